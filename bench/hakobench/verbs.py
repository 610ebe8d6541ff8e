"""The measured units of work: a full lifecycle as containerd drives it, `run`, `exec`, and the
kernel floor (bench/floor.c) doing the same kernel work in one process.

A lifecycle is what containerd's runc shim does for every container (runtime-spec runtime.md,
"Lifecycle"): `create --bundle B --pid-file F ID`, `start ID`, wait for the init (reparented to
us, the subreaper) to exit, `delete ID`. Its CPU time is the sum of the three verbs' and the
init's own (the init runs the runtime's set-up code until it execs /bin/true, and for runc it
is a separate Go process that `create` never reaps).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from . import proc
from .workspace import Container, Runtime, Workspace

TRUE = ["/bin/true"]
SLEEP = ["/bin/sleep", "1000000"]


@dataclass
class Lifecycle:
    """One create/start/wait/delete, each step measured."""

    create: proc.Sample
    start: proc.Sample
    init: proc.Sample
    delete: proc.Sample
    init_rss_kb: int | None
    total_ms: float

    @property
    def cpu_ms(self) -> float:
        """CPU of the three verbs and of the init (user + sys)."""
        verbs = self.create.cpu_ms + self.start.cpu_ms + self.delete.cpu_ms
        return verbs + self.init.cpu_ms


#: A lifecycle of a runtime (or of the floor, which gives one Sample), by name; the bool: netns.
LifecycleFn = Callable[[str, bool], "Lifecycle | proc.Sample"]


def _verb(c: Container, *args: str, timeout_s: float = 30.0) -> proc.Sample:
    s = proc.run(c.runtime.argv(*args), c.log_path, timeout_s)
    if s.status != 0:
        raise proc.BenchError(f"{c.runtime.name} {args[0]} {c.id}: exit {s.status}\n{c.log_tail()}")
    return s


def _read_pid(c: Container) -> int:
    with open(c.pid_file, encoding="ascii") as f:
        return int(f.read().strip())


def _failed(c: Container, got: proc.Steps, names: list[str]) -> proc.BenchError:
    last = names[len(got.samples) - 1] if got.samples else names[0]
    status = got.samples[-1].status if got.samples else "?"
    return proc.BenchError(f"{c.runtime.name} {last} {c.id}: exit {status}\n{c.log_tail()}")


def try_read_pid(c: Container) -> None:
    """Notes the init's pid from the pid file, if there is one by now (for cleanup)."""
    try:
        c.init_pid = _read_pid(c)
    except (OSError, ValueError):
        pass


def lifecycle(
    ws: Workspace, rt: Runtime, netns: bool, prefix: list[str] | None = None
) -> Lifecycle:
    """create, start, wait for the init, delete: one busybox /bin/true container, timed by the
    launcher from the first spawn to the last reap (the VmRSS read excluded). `prefix` runs the
    launcher under a tool (strace, perf) for bench/profile.py."""
    c = ws.new_container(rt, TRUE, netns)
    steps = [
        ["run", *rt.argv("create", "--bundle", c.bundle, "--pid-file", c.pid_file, c.id)],
        ["rss", c.pid_file],
        ["run", *rt.argv("start", c.id)],
        ["wait", c.pid_file],
        ["run", *rt.argv("delete", c.id)],
    ]
    names = ["create", "start", "init (/bin/true)", "delete"]
    got = proc.run_steps(steps, c.log_path, prefix=prefix)
    try_read_pid(c)
    if len(got.samples) != len(names) or got.samples[-1].status != 0:
        raise _failed(c, got, names)
    create, start, init, delete = got.samples
    ws.done(c)
    rss = got.rss_kb[0] if got.rss_kb else None
    return Lifecycle(create, start, init, delete, rss, got.total_ms)


def floor(
    ws: Workspace, binary: str, netns: bool, cgroups: bool, prefix: list[str] | None = None
) -> proc.Sample:
    """bench/floor.c: the same namespaces, cgroups, mounts, pivot_root and exec, nothing else."""
    argv = [binary]
    if netns:
        argv.append("--net")
    if cgroups:
        argv += ["--cgroup", ws.next_name("floor")]
    argv.append(ws.rootfs)
    log = os.path.join(ws.dir, "floor.log")
    got = proc.run_steps([["run", *argv]], log, prefix=prefix)  # one process: the whole lifecycle
    if not got.samples:
        raise proc.BenchError(f"no measurement for {argv}")
    s = got.samples[0]
    if s.status != 0:
        with open(log, encoding="utf-8", errors="replace") as f:
            raise proc.BenchError(f"{' '.join(argv)}: exit {s.status}\n{f.read()[-2000:]}")
    return s


def run(ws: Workspace, rt: Runtime, netns: bool) -> proc.Sample:
    """`run --bundle B ID` of /bin/true: the runtime waits for the container and deletes it."""
    c = ws.new_container(rt, TRUE, netns)
    s = _verb(c, "run", "--bundle", c.bundle, c.id)
    ws.done(c)
    return s


class ExecTarget:
    """A running `sleep` container to `exec` into; `close` kills, reaps and deletes it."""

    def __init__(self, ws: Workspace, rt: Runtime) -> None:
        self.ws = ws
        self.c = ws.new_container(rt, SLEEP, True)
        c = self.c
        got = proc.run_steps(
            [
                ["run", *rt.argv("create", "--bundle", c.bundle, "--pid-file", c.pid_file, c.id)],
                ["run", *rt.argv("start", c.id)],
            ],
            c.log_path,
        )
        try_read_pid(c)
        if len(got.samples) != 2 or got.samples[-1].status != 0:
            raise _failed(c, got, ["create", "start"])

    def exec_true(self) -> proc.Sample:
        """`exec ID /bin/true`, measured."""
        return _verb(self.c, "exec", self.c.id, "/bin/true")

    def close(self) -> None:
        """kill KILL, reap the init as containerd's shim does, delete."""
        c = self.c
        _verb(c, "kill", c.id, "KILL")
        if c.init_pid:
            proc.wait_orphan(c.init_pid, 10)
        _verb(c, "delete", c.id)
        self.ws.done(c)
