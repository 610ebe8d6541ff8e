"""A node's worth of containers: `state` and `list` with 10, 100 and 1,000 containers in the
store, and 100 lifecycles at 16 in parallel with the latency percentiles of each verb.

Engines poll `state` and `list` all the time (containerd's shim per container, CRI-O and podman
on every `ps`), so what matters is how they grow with the number of containers on the node. The
store holds *created* containers (the init waits on the exec fifo; no network namespace, so that
1,000 of them cost no more than a few seconds to make and remove): each listed container is
then live, so `list` derives a live status for every one, as on a busy node.

Every runtime gets the same population at the same time, and the queries are interleaved
(state of hako, runc, crun, then list of each, ...), as in every other scenario. The containers
are created and deleted in batches through one launcher each (`proc.run_steps`), unmeasured.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import proc, verbs
from .workspace import Container, Runtime, Workspace


#: Batches of create/delete per launcher (each step bounded by the launcher's timeout).
BATCH = 50


def _progress(label: str, i: int, n: int) -> None:
    print(f"\r  {label}: {i}/{n}", end="\n" if i == n else "", file=sys.stderr, flush=True)


def _log_tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-2000:]
    except FileNotFoundError:
        return ""


QUERIES = {
    "state": lambda c: ["state", c.id],
    "list": lambda _c: ["list"],
    "list --format json": lambda _c: ["list", "--format", "json"],
}


@dataclass
class ScaleResults:
    """`query[count][query][runtime]`: samples of each query with `count` containers."""

    query: dict[int, dict[str, dict[str, list[proc.Sample]]]] = field(default_factory=dict)
    #: 100 lifecycles at 16 in parallel: every lifecycle, and each round's total wall time.
    wide: dict[str, list[verbs.Lifecycle]] = field(default_factory=dict)
    wide_ms: dict[str, list[float]] = field(default_factory=dict)


class Population:
    """Created (not started) containers of one runtime, grown and removed in batches."""

    def __init__(self, ws: Workspace, rt: Runtime) -> None:
        self.ws = ws
        self.rt = rt
        self.live: list[Container] = []
        self.log = os.path.join(ws.dir, f"scale-{rt.name}.log")

    def _create_step(self, c: Container) -> list[str]:
        create = ["create", "--bundle", c.bundle, "--pid-file", c.pid_file, c.id]
        return ["run", *self.rt.argv(*create)]

    def grow_to(self, n: int) -> None:
        """Creates containers until there are `n`."""
        while len(self.live) < n:
            batch = [
                self.ws.new_container(self.rt, verbs.SLEEP, netns=False)
                for _ in range(min(BATCH, n - len(self.live)))
            ]
            steps = [self._create_step(c) for c in batch]
            got = proc.run_steps(steps, self.log)
            for c in batch:
                verbs.try_read_pid(c)
            self.live += batch[: len(got.samples)]
            if len(got.samples) != len(batch) or got.samples[-1].status != 0:
                raise proc.BenchError(f"{self.rt.name} create: {_log_tail(self.log)}")

    def remove(self) -> None:
        """`delete --force` of every container (the inits reparented to us are reaped)."""
        while self.live:
            batch, self.live = self.live[:BATCH], self.live[BATCH:]
            steps = [["run", *self.rt.argv("delete", "--force", c.id)] for c in batch]
            got = proc.run_steps(steps, self.log)
            proc.reap_strays()
            for c, s in zip(batch, got.samples, strict=False):
                if s.status == 0:
                    self.ws.done(c)
            if len(got.samples) != len(batch) or got.samples[-1].status != 0:
                raise proc.BenchError(f"{self.rt.name} delete --force: {_log_tail(self.log)}")


def queries(
    ws: Workspace, rts: dict[str, Runtime], counts: list[int], reps: int, res: ScaleResults
) -> None:
    """state, list and list --format json with each count of containers, interleaved."""
    pops = {name: Population(ws, rt) for name, rt in rts.items()}
    try:
        for n in counts:
            for pop in pops.values():
                pop.grow_to(n)
            got: dict[str, dict[str, list[proc.Sample]]] = {
                q: {name: [] for name in rts} for q in QUERIES
            }
            for i in range(reps):
                for q, args in QUERIES.items():
                    for name, pop in pops.items():
                        c = pop.live[(i * 7919) % len(pop.live)]  # a different one each time
                        s = proc.run(pop.rt.argv(*args(c)), os.devnull)
                        if s.status != 0:
                            raise proc.BenchError(f"{name} {q} with {n}: exit {s.status}")
                        got[q][name].append(s)
                _progress(f"state, list with {n} containers", i + 1, reps)
            res.query[n] = got
    finally:
        for pop in pops.values():
            pop.remove()


def wide(
    ws: Workspace,
    names: list[str],
    one: verbs.LifecycleFn,
    width: int,
    total: int,
    rounds: int,
    res: ScaleResults,
) -> None:
    """`total` lifecycles at `width` in parallel, `rounds` times per runtime, interleaved."""
    with ThreadPoolExecutor(max_workers=width) as pool:
        for r in range(rounds):
            for name in names:
                t0 = time.perf_counter_ns()
                futs = [pool.submit(one, name, True) for _ in range(total)]
                got = [f.result() for f in futs]
                res.wide_ms.setdefault(name, []).append((time.perf_counter_ns() - t0) / 1e6)
                if not isinstance(got[0], proc.Sample):
                    res.wide.setdefault(name, []).extend(got)  # type: ignore[arg-type]
                if ws.stopping.is_set():
                    raise proc.BenchError("stopping")
            _progress(f"{total} lifecycles at {width} in parallel", r + 1, rounds)
