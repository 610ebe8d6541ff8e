"""Everything the benchmark creates, in one place, so that it can all be removed: the temporary
directory (rootfs, bundles, each runtime's `--root`), the containers alive at any moment, and
the cgroups named `/hako-bench-<runtime>-<pid>-<n>` in every hierarchy of /sys/fs/cgroup.

Cleanup does not trust the runtimes: after `kill`/`delete --force` it sweeps the cgroup
hierarchies for this run's names, kills what is still inside, and removes the directories. What
it had to sweep is counted per runtime and reported, since a runtime that leaks cgroups is a
finding in itself.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass

from . import bundle, proc

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class Runtime:
    """A runtime binary under test with its own `--root` state directory."""

    name: str
    binary: str
    root: str

    def argv(self, *args: str) -> list[str]:
        """The command line for one verb."""
        return [self.binary, "--root", self.root, *args]


@dataclass
class Container:
    """One container's names and paths."""

    runtime: Runtime
    id: str
    bundle: str
    cgroups_path: str
    pid_file: str
    log_path: str
    init_pid: int | None = None

    def log_tail(self) -> str:
        """The runtime's output for this container (for error messages)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-2000:]
        except FileNotFoundError:
            return ""


class Workspace:
    """The run's temporary directory, container registry and cleanup."""

    def __init__(self, parent: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="hako-bench-", dir=parent)
        self.rootfs = os.path.join(self.dir, "rootfs")
        bundle.make_rootfs(self.rootfs)
        self.tag = str(os.getpid())
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.live: dict[str, Container] = {}
        self.leaked_cgroups: dict[str, int] = {}
        self.stopping = threading.Event()
        self.stray_processes = 0

    def runtime(self, name: str, binary: str) -> Runtime:
        """A runtime with its `--root` inside the workspace."""
        root = os.path.join(self.dir, f"state-{name}")
        os.makedirs(root, exist_ok=True)
        return Runtime(name, binary, root)

    def next_name(self, what: str) -> str:
        """A name unique to this run: `hako-bench-<what>-<pid>-<n>`."""
        return f"hako-bench-{what}-{self.tag}-{next(self._counter)}"

    def new_container(self, rt: Runtime, args: list[str], netns: bool) -> Container:
        """Writes a bundle for a new container and registers it for cleanup."""
        if self.stopping.is_set():
            raise proc.BenchError("stopping")
        name = self.next_name(rt.name)
        bdir = os.path.join(self.dir, "bundles", name)
        cg = "/" + name
        bundle.write_bundle(bdir, bundle.config(self.rootfs, args, cg, netns))
        c = Container(rt, name, bdir, cg, os.path.join(bdir, "pid"), os.path.join(bdir, "log"))
        with self._lock:
            self.live[c.id] = c
        return c

    def done(self, c: Container) -> None:
        """The container was deleted: forget it and remove its bundle."""
        with self._lock:
            self.live.pop(c.id, None)
        shutil.rmtree(c.bundle, ignore_errors=True)

    def cleanup(self) -> None:
        """Kills and deletes live containers, sweeps cgroups, removes the temporary directory."""
        self.stopping.set()
        with self._lock:
            live = list(self.live.values())
            self.live.clear()
        for c in live:
            try:
                proc.run(c.runtime.argv("kill", c.id, "KILL"), os.devnull, 10)
                if c.init_pid:
                    proc.wait_orphan(c.init_pid, 10)
                proc.run(c.runtime.argv("delete", "--force", c.id), os.devnull, 20)
            except (proc.BenchError, OSError):
                pass
        self.stray_processes = proc.kill_children()
        self.sweep_cgroups()
        proc.reap_strays()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sweep_cgroups(self) -> None:
        """Removes every cgroup of this run still present, counting them per runtime."""
        pattern = os.path.join(CGROUP_ROOT, "*", f"hako-bench-*-{self.tag}-*")
        for d in sorted(glob.glob(pattern)):
            if not os.path.isdir(d):
                continue
            rt = os.path.basename(d).split("-")[2]
            self.leaked_cgroups[rt] = self.leaked_cgroups.get(rt, 0) + 1
            _kill_cgroup(d)
            try:
                os.rmdir(d)
            except OSError:
                pass


def _kill_cgroup(d: str) -> None:
    for f, v in (("freezer.state", "THAWED"), ("cgroup.kill", "1")):
        try:
            with open(os.path.join(d, f), "w", encoding="ascii") as fh:
                fh.write(v)
        except OSError:
            pass
    try:
        with open(os.path.join(d, "cgroup.procs"), encoding="ascii") as fh:
            pids = [int(p) for p in fh.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait_orphan(pid, 5)
        except proc.BenchError:
            pass
