"""engine.utils and engine.testing: MMEngine's helper names that ported code imports."""

import pytest
import torch

from engine.testing import assert_allclose
from engine.utils import digit_version, is_list_of, is_seq_of, is_tuple_of, mkdir_or_exist, scandir
from engine.utils.dl_utils import has_batch_norm, is_norm


def test_digit_version_orders_releases_as_versions_do():
    order = ["1.6.0", "1.13.0", "2.1.0.dev1", "2.1.0rc1", "2.1.0", "2.1.0.post1", "2.10"]
    assert sorted(order, key=digit_version) == order
    assert digit_version("1.13.0") == (1, 13, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="not a version"):
        digit_version("latest")


def test_type_checks():
    assert is_seq_of([1, 2], int) and not is_seq_of([1, "a"], int)
    assert is_list_of([1.0], float) and not is_list_of((1.0,), float)
    assert is_tuple_of((1,), int) and not is_tuple_of([1], int)


def test_folders(tmp_path):
    mkdir_or_exist(tmp_path / "a" / "b")
    (tmp_path / "a" / "b" / "x.PY").write_text("")
    (tmp_path / "a" / "y.txt").write_text("")
    assert list(scandir(tmp_path / "a", ".txt")) == ["y.txt"]
    assert list(scandir(tmp_path / "a", ".py", recursive=True, case_sensitive=False)) == ["b/x.PY"]


def test_norm_checks():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert has_batch_norm(model) and is_norm(model[1]) and not is_norm(model[0])


def test_assert_allclose_compares_across_dtypes_and_fails_when_far():
    assert_allclose(torch.tensor([1.0, float("nan")]), [1, float("nan")])
    with pytest.raises(AssertionError):
        assert_allclose(torch.tensor([1.0]), [1.1])
