"""The scenarios, each run for every runtime *interleaved*: sample i of hako, of runc, of crun
(and of the floor), then sample i+1, ... so that whatever drifts during the run (page cache,
CPU frequency, the other engineers' builds on the same two cores) weighs on every runtime alike.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar
from collections.abc import Callable

from . import proc, scale, verbs
from .workspace import Runtime, Workspace

T = TypeVar("T")

FLOOR = "floor"
FLOOR_NOCG = "floor-nocg"


@dataclass
class Counts:
    """How many samples each scenario takes."""

    warmup: int
    lifecycle: int
    run: int
    exec: int
    seq_rounds: int
    par_rounds: int
    scale_reps: int
    wide_rounds: int
    seq_len: int = 50
    par_width: int = 10
    scale_counts: tuple[int, ...] = (10, 100, 1000)
    wide_total: int = 100
    wide_width: int = 16


QUICK = Counts(
    warmup=2, lifecycle=15, run=10, exec=10, seq_rounds=1, par_rounds=3, scale_reps=5, wide_rounds=1
)
FULL = Counts(
    warmup=5,
    lifecycle=200,
    run=100,
    exec=100,
    seq_rounds=5,
    par_rounds=30,
    scale_reps=30,
    wide_rounds=3,
)


@dataclass
class Results:
    """Everything measured, keyed by scenario then runtime name."""

    lifecycle: dict[bool, dict[str, list[verbs.Lifecycle]]] = field(default_factory=dict)
    floor: dict[bool, dict[str, list[proc.Sample]]] = field(default_factory=dict)
    run: dict[str, list[proc.Sample]] = field(default_factory=dict)
    exec: dict[str, list[proc.Sample]] = field(default_factory=dict)
    seq_ms: dict[str, list[float]] = field(default_factory=dict)
    par_ms: dict[str, list[float]] = field(default_factory=dict)
    at_scale: scale.ScaleResults = field(default_factory=scale.ScaleResults)


def interleave(names: list[str], n: int, fn: Callable[[str], T], label: str) -> dict[str, list[T]]:
    """fn(name) for each name in turn, n rounds: A B C A B C ..."""
    out: dict[str, list[T]] = {name: [] for name in names}
    for i in range(n):
        for name in names:
            out[name].append(fn(name))
        print(f"\r  {label}: {i + 1}/{n}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


class Bench:
    """Runs the scenarios over the runtimes and the floor binary."""

    def __init__(self, ws: Workspace, runtimes: list[Runtime], floor_bin: str, n: Counts):
        self.ws = ws
        self.rts = {rt.name: rt for rt in runtimes}
        self.floor_bin = floor_bin
        self.n = n
        self.pool = ThreadPoolExecutor(max_workers=n.par_width)

    def close(self) -> None:
        """Waits for in-flight parallel work (each step is bounded by a timeout)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, name: str, netns: bool) -> verbs.Lifecycle | proc.Sample:
        if name == FLOOR:
            return verbs.floor(self.ws, self.floor_bin, netns, cgroups=True)
        if name == FLOOR_NOCG:
            return verbs.floor(self.ws, self.floor_bin, netns, cgroups=False)
        return verbs.lifecycle(self.ws, self.rts[name], netns)

    def lifecycles(self, res: Results, netns: bool) -> None:
        """create/start/wait/delete, and the floor with and without cgroups."""
        names = [*self.rts, FLOOR, FLOOR_NOCG]
        label = "lifecycle" + (" (netns)" if netns else " (no netns)")
        interleave(names, self.n.warmup, lambda nm: self._one(nm, netns), label + " warm-up")
        got = interleave(names, self.n.lifecycle, lambda nm: self._one(nm, netns), label)
        res.lifecycle[netns] = {k: v for k, v in got.items() if k in self.rts}  # type: ignore
        res.floor[netns] = {k: v for k, v in got.items() if k not in self.rts}  # type: ignore

    def runs(self, res: Results) -> None:
        """`run` of the /bin/true bundle."""
        res.run = interleave(
            list(self.rts), self.n.run, lambda nm: verbs.run(self.ws, self.rts[nm], True), "run"
        )

    def execs(self, res: Results) -> None:
        """`exec /bin/true` into a running container, one container per runtime."""
        targets: dict[str, verbs.ExecTarget] = {}
        try:
            for name, rt in self.rts.items():
                targets[name] = verbs.ExecTarget(self.ws, rt)
            res.exec = interleave(
                list(self.rts), self.n.exec, lambda nm: targets[nm].exec_true(), "exec"
            )
        finally:
            for t in targets.values():
                t.close()

    def _timed(self, fn: Callable[[], None]) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6

    def sequential(self, res: Results) -> None:
        """50 lifecycles in a row: total wall time."""

        def batch(name: str) -> float:
            return self._timed(lambda: [self._one(name, True) for _ in range(self.n.seq_len)])

        names = [*self.rts, FLOOR]
        res.seq_ms = interleave(names, self.n.seq_rounds, batch, f"{self.n.seq_len} in a row")

    def parallel(self, res: Results) -> None:
        """10 lifecycles at once: wall time until the last is deleted."""

        def batch(name: str) -> float:
            def go() -> None:
                futs = [self.pool.submit(self._one, name, True) for _ in range(self.n.par_width)]
                for f in futs:
                    f.result()

            return self._timed(go)

        names = [*self.rts, FLOOR]
        res.par_ms = interleave(names, self.n.par_rounds, batch, f"{self.n.par_width} in parallel")

    def scale_queries(self, res: Results) -> None:
        """`state`, `list`, `list --format json` with 10, 100 and 1,000 containers."""
        scale.queries(self.ws, self.rts, list(self.n.scale_counts), self.n.scale_reps, res.at_scale)

    def wide(self, res: Results) -> None:
        """100 lifecycles at 16 in parallel: each one's verbs, and the total."""
        n = self.n
        names = [*self.rts, FLOOR]
        width, total, rounds = n.wide_width, n.wide_total, n.wide_rounds
        scale.wide(self.ws, names, self._one, width, total, rounds, res.at_scale)
