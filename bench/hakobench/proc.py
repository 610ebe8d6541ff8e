"""Spawning a runtime verb and measuring it: wall time, CPU time and peak RSS from wait4(2).

Why wait4 and not getrusage(RUSAGE_CHILDREN): wait4 gives the usage of exactly one child (plus
the descendants *it* reaped), so each verb is measured on its own, and verbs run in parallel do
not mix. ru_maxrss is the peak resident set of that child or of any descendant it reaped
(getrusage(2)), in KiB.

Why a launcher (bench/spawn.c) runs the measured commands: ru_maxrss survives execve(2), so
anything spawned from the Python interpreter would report Python's peak; and a whole lifecycle
timed in C does not carry a Python round trip per verb. The launcher is the child subreaper
(prctl(2) PR_SET_CHILD_SUBREAPER) that containerd's shim is: the container's init is reparented
to it when `create` returns, and it reaps it with its rusage. This process is a subreaper too, for
the inits that outlive a launcher (the `exec` target) and as the last safety net.

Every wait is bounded: a pidfd (pidfd_open(2)) polled with a timeout, then the child is killed.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36

#: The environment every measured process gets: the same, small, for every runtime.
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class BenchError(Exception):
    """A measured command failed or hung: the benchmark stops and cleans up."""


@dataclass
class Sample:
    """One measured process."""

    wall_ms: float
    cpu_ms: float
    maxrss_kb: int
    status: int


def become_subreaper() -> None:
    """Makes this process the reaper of every orphaned descendant (prctl(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER)")


def _poll_exit(pidfd: int, timeout_s: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout_s * 1000)))


def _cpu_ms(ru: os.struct_rusage) -> float:
    return (ru.ru_utime + ru.ru_stime) * 1000.0


#: The compiled bench/spawn.c, set once by the entry point (see set_launcher).
_LAUNCHER: str | None = None


def set_launcher(path: str) -> None:
    """Uses the small static launcher (bench/spawn.c) for every measured command."""
    global _LAUNCHER
    _LAUNCHER = path


@dataclass
class Steps:
    """What the launcher reported for a sequence of steps."""

    samples: list[Sample]
    rss_kb: list[int | None]
    total_ms: float


def run_steps(
    steps: list[list[str]], log_path: str, timeout_s: float = 30.0, prefix: list[str] | None = None
) -> Steps:
    """Runs steps through the launcher: ["run", *argv], ["rss", pidfile], ["wait", pidfile].

    Commands get stdin /dev/null and stdout and stderr appended to log_path. The launcher stops
    at the first failing command, so fewer samples than "run"/"wait" steps means a failure; the
    last sample then says which and how. `prefix` runs the launcher under a tool (strace, perf).
    """
    if _LAUNCHER is None:
        raise BenchError("set_launcher() was not called")
    cmd = [*(prefix or []), _LAUNCHER, log_path, str(int(timeout_s * 1000))]
    for step in steps:
        cmd += ["--", *step]
    r, w = os.pipe2(os.O_CLOEXEC)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, w, 1)]
    try:
        pid = os.posix_spawn(cmd[0], cmd, ENV, file_actions=actions)
    finally:
        os.close(devnull)
        os.close(w)
    try:
        pidfd = os.pidfd_open(pid)
        try:
            if not _poll_exit(pidfd, timeout_s * len(steps) + 5):
                os.kill(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
    finally:
        os.close(r)
        _, status, _ = os.wait4(pid, 0)
    if status != 0:
        raise BenchError(f"launcher failed ({status}) for {steps}")
    return _parse(out.decode("ascii", "replace"), steps)


def _parse(out: str, what: list[list[str]]) -> Steps:
    res = Steps([], [], 0.0)
    for line in out.splitlines():
        f = line.split()
        if f[0] in ("run", "wait") and len(f) == 7:
            wall_ns, utime_us, stime_us, maxrss, code, timed_out = (int(x) for x in f[1:])
            if timed_out:
                raise BenchError(f"timed out: {what}")
            res.samples.append(Sample(wall_ns / 1e6, (utime_us + stime_us) / 1000, maxrss, code))
        elif f[0] == "rss" and len(f) == 2:
            res.rss_kb.append(int(f[1]) if int(f[1]) >= 0 else None)
        elif f[0] == "total" and len(f) == 2:
            res.total_ms = int(f[1]) / 1e6
        else:
            raise BenchError(f"the launcher reported {line!r} for {what}")
    return res


def run(argv: list[str], log_path: str, timeout_s: float = 30.0) -> Sample:
    """One command through the launcher, measured."""
    got = run_steps([["run", *argv]], log_path, timeout_s)
    if not got.samples:
        raise BenchError(f"no measurement for {argv}")
    return got.samples[0]


def wait_orphan(pid: int, timeout_s: float = 30.0) -> Sample | None:
    """Waits for a reparented container init to exit and reaps it.

    Returns its rusage (wall is time spent waiting), or None if it is not our child (then only
    its exit is awaited). Raises BenchError if it outlives the timeout.
    """
    t0 = time.perf_counter_ns()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        if not _poll_exit(pidfd, timeout_s):
            raise BenchError(f"container init {pid} still runs after {timeout_s}s")
    finally:
        os.close(pidfd)
    try:
        _, status, ru = os.wait4(pid, 0)
    except ChildProcessError:
        return None
    t1 = time.perf_counter_ns()
    return Sample((t1 - t0) / 1e6, _cpu_ms(ru), ru.ru_maxrss, os.waitstatus_to_exitcode(status))


def reap_strays() -> None:
    """Reaps any zombie reparented to us that nobody waits for (never blocks)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def vm_rss_kb(pid: int) -> int | None:
    """VmRSS of a live process from /proc/<pid>/status (proc(5)), in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def kill_children() -> int:
    """SIGKILLs and reaps every child left (as subreaper, every orphaned descendant is one).

    The last safety net of cleanup: children are listed in /proc/self/task/*/children (proc(5)).
    Returns how many were found.
    """
    found = 0
    for _ in range(10):
        pids: set[int] = set()
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                    pids.update(int(p) for p in f.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                wait_orphan(pid, 5)
            except BenchError:
                pass
    return found
