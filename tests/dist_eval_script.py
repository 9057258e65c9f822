"""Run under ``accelerate launch``: every sample is evaluated exactly once.

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/dist_eval_script.py 3 4 5``
(the arguments are batch sizes). A prepared DataLoader over 13 samples pads the
last batches with repeats; the metric must still see ids 0..12, once each, on
every rank.
"""

import sys

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from engine.evaluator.evaluator import Evaluator
from engine.evaluator.metric import BaseMetric

NUM_SAMPLES = 13


class SampleIds(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(int(i) for i in data_batch)

    def compute_metrics(self, results):
        return {"ids": list(results)}


def main() -> None:
    accelerator = Accelerator()
    for batch_size in map(int, sys.argv[1:]):
        loader = accelerator.prepare(DataLoader(list(range(NUM_SAMPLES)), batch_size=batch_size))
        evaluator = Evaluator([SampleIds(prefix="eval"), SampleIds(prefix="alone")])
        standalone = SampleIds()
        seen = 0
        for batch in loader:
            evaluator.process(data_samples=None, data_batch=batch)
            standalone.process(batch, None)
            seen += len(batch)
        metrics = evaluator.evaluate(NUM_SAMPLES)
        ids = standalone.evaluate(NUM_SAMPLES)["ids"]
        expected = list(range(NUM_SAMPLES))
        # In dataset order, not merely the right set: the interleaving must be exact.
        assert metrics["eval/ids"] == expected, (accelerator.process_index, metrics)
        assert metrics["alone/ids"] == expected and ids == expected, ids
        gathered = [(seen, metrics)]
        if accelerator.num_processes > 1:
            gathered = [None] * accelerator.num_processes
            torch.distributed.all_gather_object(gathered, (seen, metrics))
            assert all(g[1] == metrics for g in gathered)
        loaded = sum(g[0] for g in gathered)  # more than 13 where the sampler padded
        if accelerator.is_main_process:
            print(
                f"RESULTS {len(ids)} batch_size={batch_size} "
                f"processes={accelerator.num_processes} loaded={loaded}",
                flush=True,
            )
    accelerator.end_training()


if __name__ == "__main__":
    main()
