"""One-off that wrote digits.parquet; needs scikit-learn and pyarrow, which engine does not.

Run in a throwaway venv: ``pip install scikit-learn pyarrow && python make_digits.py``.
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

digits = load_digits()
images = [[int(v) for v in row] for row in digits.data]  # 8x8, row-major, values 0..16
table = pa.table(
    {
        "image": pa.array(images, pa.list_(pa.int64())),
        "label": pa.array(digits.target.tolist(), pa.int64()),
    }
)
pq.write_table(table, Path(__file__).with_name("digits.parquet"), compression="zstd")
