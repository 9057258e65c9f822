"""`MultiProcessTestCase`: run each test method in `world_size` processes (one per rank).

The interface of MMEngine's (and PyTorch's) distributed test case, for ported tests:
``setUp`` calls ``self._spawn_processes()``; each process gets ``self.rank`` and runs the
test method through ``run_test`` (a subclass may override it to build fixtures, then call
``super().run_test``); the test method in the main process waits for the processes and
fails with the first rank's traceback. The test itself starts its process group (gloo on
CPU) from ``self.rank`` and ``self.world_size``.

Processes are forked (fast: nothing is imported again) unless the main process already
started a process group, which a forked child would inherit half-alive; then they are
spawned, which needs the test class importable by its module name (pytest's default).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import tempfile
import traceback
import unittest
from typing import Any

import torch.distributed as dist

_SKIP = 77  # a child's exit code for "skipped"; its reason comes through the pipe


class MultiProcessTestCase(unittest.TestCase):
    """Each test method runs once per rank, in its own process.

    Example:
        >>> class TestAllReduce(MultiProcessTestCase):
        ...     def setUp(self):
        ...         super().setUp()
        ...         self._spawn_processes()
        ...     def test_sum(self):
        ...         torch.distributed.init_process_group(
        ...             'gloo', init_method=f'file://{self.file_name}',
        ...             rank=self.rank, world_size=self.world_size)
        ...         ...
    """

    MAIN_PROCESS_RANK = -1
    TIMEOUT = 300  # seconds a test may take in its processes

    def __init__(self, method_name: str = "runTest") -> None:
        super().__init__(method_name)
        method = getattr(self, method_name, None)
        if method is not None:
            setattr(self, method_name, self._main_or_rank(method))
        self.rank = self.MAIN_PROCESS_RANK
        self.file_name = ""
        self.processes: list[Any] = []
        self._pipes: list[Any] = []

    @property
    def world_size(self) -> int:
        return 2

    def _main_or_rank(self, method: Any) -> Any:
        """In the main process, wait for the ranks; in a rank's process, run the test."""

        @functools.wraps(method)
        def wrapper() -> None:
            if self.rank == self.MAIN_PROCESS_RANK:
                self._join_processes()
            else:
                method()

        return wrapper

    def setUp(self) -> None:
        super().setUp()
        self.rank = self.MAIN_PROCESS_RANK
        self.processes, self._pipes = [], []
        # A file a test may use as its process group's store (init_method='file://...').
        handle, self.file_name = tempfile.mkstemp(prefix="engine_mp_")
        os.close(handle)

    def tearDown(self) -> None:
        super().tearDown()
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join()
        if self.file_name and os.path.exists(self.file_name):
            os.remove(self.file_name)

    def _spawn_processes(self) -> None:
        """Start one process per rank, each running this test method."""
        started = dist.is_available() and dist.is_initialized()
        context = multiprocessing.get_context("spawn" if started else "fork")
        for rank in range(self.world_size):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=type(self)._run,
                args=(rank, self._testMethodName, self.file_name, send),
            )
            process.start()
            send.close()  # the parent keeps only its reading end
            self.processes.append(process)
            self._pipes.append(receive)

    @classmethod
    def _run(cls, rank: int, test_name: str, file_name: str, pipe: Any) -> None:
        """A rank's process: a fresh test case runs the test, reports how it ended, exits."""
        self = cls(test_name)
        self.rank, self.file_name = rank, file_name
        try:
            self.run_test(test_name, pipe)
        finally:
            pipe.close()

    def run_test(self, test_name: str, parent_pipe: Any) -> None:
        """Run `test_name` in this rank; a failure's traceback goes to the main process."""
        try:
            getattr(self, test_name)()
        except unittest.SkipTest as skip:
            parent_pipe.send(str(skip))
            sys.exit(_SKIP)
        except BaseException:  # noqa: BLE001 - every failure must reach the main process
            parent_pipe.send(f"rank {self.rank}:\n{traceback.format_exc()}")
            sys.exit(1)

    def _join_processes(self) -> None:
        """Wait for every rank; fail with the first failing rank's report."""
        if not self.processes:
            raise RuntimeError(
                "MultiProcessTestCase: call self._spawn_processes() in setUp before the test"
            )
        for process in self.processes:
            process.join(self.TIMEOUT)
        stuck = [rank for rank, p in enumerate(self.processes) if p.is_alive()]
        if stuck:
            self.fail(f"ranks {stuck} did not finish within {self.TIMEOUT} s")
        reports = [_report(pipe) for pipe in self._pipes]
        codes = [p.exitcode for p in self.processes]
        for rank, code in enumerate(codes):
            if code not in (0, _SKIP):
                self.fail(reports[rank] or f"rank {rank} exited with code {code}")
        if all(code == _SKIP for code in codes):
            raise unittest.SkipTest(reports[0])


def _report(pipe: Any) -> str:
    """What a rank sent before exiting ('' when it passed: its end closed unsent)."""
    try:
        return pipe.recv() if pipe.poll() else ""
    except EOFError:
        return ""
