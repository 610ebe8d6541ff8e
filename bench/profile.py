#!/usr/bin/env python3
"""Where each runtime's lifecycle goes: syscall counts (strace -f) and perf stat software
counters, for one busybox /bin/true lifecycle of hako, runc and crun and for the kernel floor.
Run it through `bench/run.sh --profile` (same build and mount-namespace wrapper as the
benchmark). Writes bench/results/profile.md and prints it.

strace -f follows the launcher, the runtime verbs and the container's init until it execs
/bin/true (and /bin/true itself), so the counts are everything a lifecycle asks of the kernel.
The launcher's own few dozen syscalls are in every column alike (the floor's column shows them).
strace slows every syscall down, so its times are not reported: perf stat gives those, without
strace.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import sys

from hakobench import proc, verbs
from hakobench.workspace import Workspace

SYSCALL = re.compile(r"^\d+\s+([a-z_0-9]+)\(")
OPENAT = re.compile(r'^\d+\s+(?:openat|openat2|open)\([^"]*"([^"]*)"')
GROUPS = [
    ("/sys/fs/cgroup/", "cgroup files"),
    ("/proc/", "/proc"),
    ("/lib", "shared libraries"),
    ("/usr/lib", "shared libraries"),
    ("/etc/", "/etc"),
    ("/dev/", "/dev"),
    ("/sys/", "/sys (other)"),
]
PERF_EVENTS = "task-clock,context-switches,cpu-migrations,page-faults"
INTERESTING = [
    "execve",
    "clone",
    "clone3",
    "vfork",
    "mount",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlinkat",
    "openat",
    "openat2",
    "pidfd_open",
    "wait4",
    "flock",
    "pivot_root",
    "read",
    "write",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "futex",
    "rt_sigprocmask",
    "newfstatat",
    "statx",
    "close",
]


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def count_trace(path: str) -> tuple[collections.Counter, collections.Counter]:
    """Syscall counts and opened-file groups from an `strace -f` output file."""
    calls: collections.Counter = collections.Counter()
    files: collections.Counter = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = SYSCALL.match(line)
            if not m:
                continue
            calls[m.group(1)] += 1
            o = OPENAT.match(line)
            if o:
                p = o.group(1)
                group = next((g for pre, g in GROUPS if p.startswith(pre)), "other")
                if not p.startswith("/"):
                    group = "relative to a directory fd (rootfs set-up)"
                if "/rootfs" in p or "/bundles/" in p or "/state-" in p:
                    group = "bundle, rootfs, state"
                files[group] += 1
    return calls, files


def perf_stat(path: str) -> dict[str, float]:
    """`perf stat -x,` output: event name → value (summed over the run)."""
    out: dict[str, float] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 3 and parts[0] and parts[0][0].isdigit():
                try:
                    out[parts[2]] = float(parts[0])
                except ValueError:
                    pass
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hako", required=True)
    p.add_argument("--runc", required=True)
    p.add_argument("--crun", required=True)
    p.add_argument("--floor", required=True)
    p.add_argument("--workdir", default=None, help="where bundles and state go (a tmpfs)")
    p.add_argument("--spawn", required=True)
    p.add_argument("--perf-runs", type=int, default=30)
    p.add_argument("--traces", help="copy the strace -f outputs into this directory")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = p.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    strace = "/usr/bin/strace"
    perf = "/usr/bin/perf"
    proc.become_subreaper()
    proc.set_launcher(a.spawn)
    ws = Workspace(a.workdir)
    names = ["hako", "runc", "crun"]
    rts = {n: ws.runtime(n, getattr(a, n)) for n in names}
    calls: dict[str, collections.Counter] = {}
    files: dict[str, collections.Counter] = {}
    perf_res: dict[str, dict[str, float]] = {}
    try:
        for name in [*names, "floor"]:
            trace = os.path.join(ws.dir, f"strace-{name}")
            pre = [strace, "-f", "-qq", "-o", trace]
            if name == "floor":
                verbs.floor(ws, a.floor, True, True, prefix=pre)
            else:
                verbs.lifecycle(ws, rts[name], True)  # warm
                verbs.lifecycle(ws, rts[name], True, prefix=pre)
            calls[name], files[name] = count_trace(trace)
            if a.traces:
                os.makedirs(a.traces, exist_ok=True)
                shutil.copy(trace, a.traces)
        if os.path.exists(perf):
            for name in [*names, "floor"]:
                acc: collections.Counter = collections.Counter()
                for _ in range(a.perf_runs):
                    out = os.path.join(ws.dir, f"perf-{name}")
                    pre = [perf, "stat", "-x,", "-e", PERF_EVENTS, "-o", out]
                    if name == "floor":
                        verbs.floor(ws, a.floor, True, True, prefix=pre)
                    else:
                        verbs.lifecycle(ws, rts[name], True, prefix=pre)
                    acc.update(perf_stat(out))
                perf_res[name] = {k: v / a.perf_runs for k, v in acc.items()}
    except KeyboardInterrupt:
        print("profile: interrupted, cleaning up", file=sys.stderr)
        return 130
    except (proc.BenchError, OSError) as e:
        print(f"profile: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ws.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    cols = [*names, "floor"]
    md = [
        "## Where a lifecycle goes (one busybox /bin/true lifecycle, new network namespace)",
        "",
        "### Syscalls (strace -f: the verbs, the init until it execs, the launcher)",
        "",
        "| syscall | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
        "| **total** | " + " | ".join(str(sum(calls[c].values())) for c in cols) + " |",
    ]
    top = [s for s, _ in calls["hako"].most_common(20)]
    for s in INTERESTING:
        if s not in top and any(calls[c][s] for c in cols):
            top.append(s)
    for s in top:
        md.append(f"| {s} | " + " | ".join(str(calls[c][s]) for c in cols) + " |")
    groups = sorted({g for c in cols for g in files[c]})
    md += [
        "",
        "### Files opened (open/openat), by place",
        "",
        "| place | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for g in groups:
        md.append(f"| {g} | " + " | ".join(str(files[c][g]) for c in cols) + " |")
    if perf_res:
        md += [
            "",
            f"### perf stat, mean of {a.perf_runs} lifecycles (software events; this VM "
            "has no hardware counters)",
            "",
            "| event | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for ev in PERF_EVENTS.split(","):
            md.append(
                f"| {ev} | "
                + " | ".join(f"{perf_res[c].get(ev, float('nan')):.1f}" for c in cols)
                + " |"
            )
    text = "\n".join(md) + "\n"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "profile.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
