#!/usr/bin/env python3
"""hako vs runc vs crun, paired: see bench/README.md. Run it through bench/run.sh, which builds
the binaries and enters the private mount namespace that crun needs on this hybrid host.

Writes bench/results/{results.md,latency.png,results.json} and prints the table.
Exit status: 0, 1 if a measured command failed (the error says which), 130 on Ctrl-C; in every
case what the benchmark created is removed first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from hakobench import proc, report, scenarios
from hakobench.workspace import Workspace


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _source_state(repo: str) -> str:
    """Which hako was measured: the commit, and whether the tree had changes."""
    git = subprocess.run(
        ["git", "-C", repo, "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return git.stdout.strip() or "unknown"


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke check in about a minute")
    p.add_argument("--hako", required=True, help="the hako binary (release build)")
    p.add_argument("--runc", default="/usr/sbin/runc")
    p.add_argument("--crun", default="/usr/bin/crun")
    p.add_argument("--floor", required=True, help="the compiled bench/floor.c")
    p.add_argument("--workdir", default=None, help="where bundles and state go (a tmpfs)")
    p.add_argument("--spawn", required=True, help="the compiled bench/spawn.c")
    p.add_argument("--out", default=os.path.join(here, "results"))
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    counts = scenarios.QUICK if a.quick else scenarios.FULL
    proc.become_subreaper()
    proc.set_launcher(a.spawn)
    ws = Workspace(a.workdir)
    binaries = {"hako": a.hako, "runc": a.runc, "crun": a.crun}
    runtimes = [ws.runtime(n, b) for n, b in binaries.items()]
    bench = scenarios.Bench(ws, runtimes, a.floor, counts)
    res = scenarios.Results()
    status = 0
    load_before = os.getloadavg()[0]
    try:
        bench.lifecycles(res, netns=True)
        bench.lifecycles(res, netns=False)
        bench.runs(res)
        bench.execs(res)
        bench.sequential(res)
        bench.parallel(res)
        bench.wide(res)
        bench.scale_queries(res)
    except KeyboardInterrupt:
        print("\nbench: interrupted, cleaning up", file=sys.stderr)
        status = 130
    except (proc.BenchError, OSError) as e:
        print(f"\nbench: {e}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ws.stopping.set()
        bench.close()
        ws.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if status:
        return status

    info = {
        "date": report.now(),
        "quick": a.quick,
        "counts": f"lifecycle {counts.lifecycle}, run {counts.run}, exec {counts.exec}, "
        f"{counts.seq_len} in a row ×{counts.seq_rounds}, "
        f"{counts.par_width} in parallel ×{counts.par_rounds}, "
        f"{counts.wide_total} at {counts.wide_width} in parallel ×{counts.wide_rounds}, "
        f"state and list ×{counts.scale_reps} at each of "
        f"{', '.join(str(c) for c in counts.scale_counts)} containers",
        "leaks": ", ".join(f"{k}: {v}" for k, v in sorted(ws.leaked_cgroups.items())),
        "strays": ws.stray_processes,
        "hako_source": _source_state(os.path.dirname(here)),
        "load": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
    }
    names = [rt.name for rt in runtimes]
    os.makedirs(a.out, exist_ok=True)
    md = report.table(res, names, binaries, info)
    with open(os.path.join(a.out, "results.md"), "w", encoding="utf-8") as f:
        f.write(md + "\n![latency distributions](latency.png)\n")
    report.plot(res, names, os.path.join(a.out, "latency.png"))
    report.dump(res, os.path.join(a.out, "results.json"), info)
    print(md)
    print(f"written to {a.out}/results.md, latency.png, results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
