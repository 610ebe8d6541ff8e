"""The results as a markdown table (medians; ratios to crun and to the kernel floor), a small
PNG of the latency distributions, and a JSON file with every sample.

Medians, not means: a container start is a long-tailed distribution (a page-cache miss, a
neighbour's build), and the median is what a user sees most of the time. The PNG shows the
tails.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable

from . import proc, verbs
from .scenarios import FLOOR, FLOOR_NOCG, Results

COLORS = {"hako": "#d95f02", "runc": "#7570b3", "crun": "#1b9e77", FLOOR: "#666666"}


def med(xs: Iterable[float | None]) -> float | None:
    """Median of the values that are not None."""
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def pct(xs: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of xs: less sensitive to a loaded machine than the median."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "KiB":
        return f"{v / 1024:.1f} MiB" if v >= 10240 else f"{v:.0f} KiB"
    if unit == "s":
        return f"{v / 1000:.2f} s"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "–"
    return f"{a / b:.2f}×"


class Table:
    """Rows of medians for runtimes (and optionally the floor)."""

    def __init__(self, names: list[str]):
        self.names = names
        self.lines: list[str] = []
        self.medians: dict[str, dict[str, float | None]] = {}

    def section(self, title: str) -> None:
        """A sub-table with a heading."""
        cols = [*self.names, FLOOR, "hako ÷ crun", "hako ÷ floor"]
        self.lines += [
            "",
            f"### {title}",
            "",
            "| median | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]

    def row(
        self, label: str, unit: str, vals: dict[str, float | None], floor: float | None = None
    ) -> None:
        """One metric: a median per runtime, the floor's, and hako's ratios."""
        self.medians.setdefault(label, {**vals, FLOOR: floor})  # the first section wins
        cells = [_fmt(vals.get(n), unit) for n in self.names]
        cells.append(_fmt(floor, unit))
        cells.append(_ratio(vals.get("hako"), vals.get("crun")))
        cells.append(_ratio(vals.get("hako"), floor))
        self.lines.append(f"| {label} | " + " | ".join(cells) + " |")


def _per_rt(data: dict[str, list], f: Callable) -> dict[str, float | None]:
    return {name: med(f(x) for x in xs) for name, xs in data.items()}


def _lifecycle_rows(t: Table, res: Results, netns: bool, detail: bool) -> None:
    lc = res.lifecycle[netns]
    fl = res.floor[netns]
    t.row(
        "lifecycle wall, ms",
        "ms",
        _per_rt(lc, lambda x: x.total_ms),
        med(s.wall_ms for s in fl[FLOOR]),
    )
    t.row(
        "lifecycle wall, 10th percentile, ms",
        "ms",
        {n: pct([x.total_ms for x in xs], 0.1) for n, xs in lc.items()},
        pct([s.wall_ms for s in fl[FLOOR]], 0.1),
    )
    t.row(
        "lifecycle CPU (user+sys), ms",
        "ms",
        _per_rt(lc, lambda x: x.cpu_ms),
        med(s.cpu_ms for s in fl[FLOOR]),
    )
    t.row("floor without cgroups: wall, ms", "ms", {}, med(s.wall_ms for s in fl[FLOOR_NOCG]))
    if not detail:
        return
    for verb in ("create", "start", "delete"):
        t.row(f"`{verb}` wall, ms", "ms", _per_rt(lc, lambda x, v=verb: getattr(x, v).wall_ms))
        t.row(f"`{verb}` CPU, ms", "ms", _per_rt(lc, lambda x, v=verb: getattr(x, v).cpu_ms))
        t.row(f"`{verb}` peak RSS", "KiB", _per_rt(lc, lambda x, v=verb: getattr(x, v).maxrss_kb))
    t.row("`start` returned → init reaped, ms", "ms", _per_rt(lc, lambda x: x.init.wall_ms))
    t.row("init until exit: CPU, ms", "ms", _per_rt(lc, lambda x: x.init.cpu_ms))
    t.row(
        "init until exit: peak RSS",
        "KiB",
        _per_rt(lc, lambda x: x.init.maxrss_kb),
        med(s.maxrss_kb for s in fl[FLOOR]),
    )
    t.row("waiting init VmRSS (created)", "KiB", _per_rt(lc, lambda x: x.init_rss_kb))


def _binary_facts(binaries: dict[str, str]) -> list[str]:
    lines = ["", "### Binaries", "", "| | size | shared libraries (ldd) |", "|---|---|---|"]
    for name, path in binaries.items():
        size = os.path.getsize(path)
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        libs = [ln.split()[0] for ln in ldd.splitlines() if "=>" in ln]
        lines.append(f"| {name} | {size / 1048576:.2f} MiB | {len(libs)}: {' '.join(libs)} |")
    return lines


def _check(ok: bool | None) -> str:
    return "–" if ok is None else ("✅" if ok else "❌")


def _le(a: float | None, b: float | None, k: float) -> bool | None:
    return None if a is None or b is None else a <= k * b


Target = tuple[str, float | None, float | None, bool | None]


def _targets(t: Table) -> list[str]:
    """This issue's targets and every earlier one, each measured in this run."""
    m = t.medians

    def vs(label: str, metric: str, ref: str, k: float) -> Target:
        a, b = m.get(metric, {}).get("hako"), m.get(metric, {}).get(ref)
        return (label, a, b, _le(a, b, k))

    def under(label: str, metric: str, bound: float) -> Target:
        a = m.get(metric, {}).get("hako")
        return (label, a, bound, None if a is None else a < bound)

    rows: list[Target] = [
        vs("lifecycle wall ≤ 0.6× crun", "lifecycle wall, ms", "crun", 0.6),
        vs("lifecycle CPU ≤ 0.6× crun", "lifecycle CPU (user+sys), ms", "crun", 0.6),
        vs("lifecycle wall ≤ 2.5× floor", "lifecycle wall, ms", FLOOR, 2.5),
        vs("lifecycle wall ≤ 1.8× floor", "lifecycle wall, ms", FLOOR, 1.8),
        vs("`exec` wall ≤ 0.4× crun", "`exec` wall, ms", "crun", 0.4),
        vs("10 lifecycles in parallel ≤ 2× floor", PAR10, FLOOR, 2.0),
    ]
    create = m.get(WIDE_CREATE_MEDIAN, {}).get("hako")
    p95 = m.get(WIDE_CREATE_P95, {}).get("hako")
    rows.append((f"{WIDE}: `create` p95 ≤ 3× its median", p95, create, _le(p95, create, 3.0)))
    for n in _state_counts(m):
        rows.append(under(f"`state` with {n} containers < 1 ms", _scale_label("state", n), 1.0))
    rows.append(under("`list` with 1000 containers < 30 ms", _scale_label("list", 1000), 30.0))
    rows.append(
        under(
            "`list --format json` with 1000 containers < 30 ms",
            _scale_label("list --format json", 1000),
            30.0,
        )
    )
    for label, vals in m.items():
        if "peak RSS" in label and vals.get("crun") is not None:
            a, b = vals.get("hako"), vals.get("crun")
            rows.append((f"{label} < crun", a, b, None if a is None or b is None else a < b))
    init = m["waiting init VmRSS (created)"].get("hako")
    rows.append(("waiting init < 1 MiB", init, 1024.0, None if init is None else init < 1024))
    out = [
        "",
        "### Targets (hako, new network namespace)",
        "",
        "| target | hako | reference | met |",
        "|---|---|---|---|",
    ]
    for label, a, b, ok in rows:
        unit = "KiB" if "RSS" in label or "init <" in label else "ms"
        out.append(f"| {label} | {_fmt(a, unit)} | {_fmt(b, unit)} | {_check(ok)} |")
    met = sum(1 for r in rows if r[3])
    out += ["", f"{met} of {len(rows)} targets met."]
    return out


PAR10 = "10 lifecycles in parallel, total ms"
WIDE = "100 lifecycles at 16 in parallel"
WIDE_CREATE_MEDIAN = f"{WIDE}: `create` wall, median, ms"
WIDE_CREATE_P95 = f"{WIDE}: `create` wall, 95th percentile, ms"


def _scale_label(query: str, n: int) -> str:
    return f"`{query}` with {n} containers, wall ms"


def _state_counts(m: dict[str, dict[str, float | None]]) -> list[int]:
    """The container counts the scale scenario measured `state` at (from the row labels)."""
    out = []
    for label in m:
        if label.startswith("`state` with ") and label.endswith("containers, wall ms"):
            out.append(int(label.split()[2]))
    return out


def _scale_rows(t: Table, res: Results) -> None:
    sc = res.at_scale
    t.section("At scale: `state` and `list` with N created containers on the node")
    for n, by_query in sorted(sc.query.items()):
        for q, by_rt in by_query.items():
            t.row(_scale_label(q, n), "ms", _per_rt(by_rt, lambda s: s.wall_ms))
    if sc.query:
        n = max(sc.query)
        for q in ("state", "list"):
            by_rt = sc.query[n][q]
            t.row(f"`{q}` with {n} containers, CPU ms", "ms", _per_rt(by_rt, lambda s: s.cpu_ms))
            t.row(
                f"`{q}` with {n} containers, peak RSS",
                "KiB",
                _per_rt(by_rt, lambda s: s.maxrss_kb),
            )
    t.section(WIDE)

    def split(d: dict[str, list[float]]) -> tuple[dict[str, float | None], float | None]:
        return ({k: med(v) for k, v in d.items() if k != FLOOR}, med(d.get(FLOOR, [])))

    t.row(f"{WIDE}, total ms", "ms", *split(sc.wide_ms))
    for verb in ("create", "start", "delete"):

        def walls(xs: list[verbs.Lifecycle], v: str = verb) -> list[float]:
            return [getattr(x, v).wall_ms for x in xs]

        label = f"{WIDE}: `{verb}` wall"
        t.row(f"{label}, median, ms", "ms", {n: med(walls(xs)) for n, xs in sc.wide.items()})
        t.row(
            f"{label}, 95th percentile, ms",
            "ms",
            {n: pct(walls(xs), 0.95) for n, xs in sc.wide.items()},
        )
    t.row(
        f"{WIDE}: lifecycle wall, 95th percentile, ms",
        "ms",
        {n: pct([x.total_ms for x in xs], 0.95) for n, xs in sc.wide.items()},
    )


def table(res: Results, names: list[str], binaries: dict[str, str], info: dict) -> str:
    """The whole markdown report."""
    t = Table(names)
    t.lines += [
        "## hako vs runc vs crun",
        "",
        f"{info['date']}, Linux {platform.release()}, {os.cpu_count()} CPUs, "
        f"{'quick' if info['quick'] else 'full'} run; samples per runtime: "
        f"{info['counts']}; load average {info['load']}; hako built from "
        f"`{info['hako_source']}`. Medians; times in ms, RSS in KiB/MiB. "
        "CPU is user+sys from wait4(2); peak RSS is ru_maxrss of the verb's process "
        "(and of the descendants it reaped).",
    ]
    t.section("Lifecycle: create, start, wait, delete — new network namespace")
    _lifecycle_rows(t, res, True, detail=True)
    t.section("Lifecycle — no network namespace")
    _lifecycle_rows(t, res, False, detail=False)
    t.section("`run` and `exec` of /bin/true")
    t.row("`run` wall, ms", "ms", _per_rt(res.run, lambda s: s.wall_ms))
    t.row("`run` CPU, ms", "ms", _per_rt(res.run, lambda s: s.cpu_ms))
    t.row("`run` peak RSS", "KiB", _per_rt(res.run, lambda s: s.maxrss_kb))
    t.row("`exec` wall, ms", "ms", _per_rt(res.exec, lambda s: s.wall_ms))
    t.row("`exec` CPU, ms", "ms", _per_rt(res.exec, lambda s: s.cpu_ms))
    t.row("`exec` peak RSS", "KiB", _per_rt(res.exec, lambda s: s.maxrss_kb))
    t.section("Throughput (new network namespace)")

    def split(d: dict[str, list[float]]) -> tuple[dict[str, float | None], float | None]:
        return ({k: med(v) for k, v in d.items() if k != FLOOR}, med(d.get(FLOOR, [])))

    t.row("50 lifecycles in a row, total", "s", *split(res.seq_ms))
    t.row(PAR10, "ms", *split(res.par_ms))
    _scale_rows(t, res)
    lines = t.lines + _targets(t) + _binary_facts(binaries)
    leaks = info.get("leaks")
    lines += [
        "",
        f"Left behind and swept by the benchmark: cgroup directories {leaks or 'none'}"
        f", stray processes {info.get('strays', 0)}.",
    ]
    return "\n".join(lines) + "\n"


def plot(res: Results, names: list[str], path: str) -> None:
    """Box plots of the wall-time distributions, one panel per scenario; a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, list[float]]]] = []
    for netns, title in ((True, "lifecycle, netns"), (False, "lifecycle, no netns")):
        d = {n: [x.total_ms for x in res.lifecycle[netns][n]] for n in names}
        d[FLOOR] = [s.wall_ms for s in res.floor[netns][FLOOR]]
        panels.append((title + ": wall ms", d))
    d = {n: [x.cpu_ms for x in res.lifecycle[True][n]] for n in names}
    d[FLOOR] = [s.cpu_ms for s in res.floor[True][FLOOR]]
    panels.append(("lifecycle, netns: CPU ms", d))
    panels.append(("run: wall ms", {n: [s.wall_ms for s in res.run[n]] for n in names}))
    panels.append(("exec: wall ms", {n: [s.wall_ms for s in res.exec[n]] for n in names}))
    panels.append(("10 in parallel: wall ms", dict(res.par_ms)))
    sc = res.at_scale
    if sc.wide:
        d = {n: [x.create.wall_ms for x in sc.wide[n]] for n in names if n in sc.wide}
        panels.append(("100 at 16 in parallel: create ms", d))
    if sc.query:
        n = max(sc.query)
        d = {r: [s.wall_ms for s in sc.query[n]["list"][r]] for r in names}
        panels.append((f"list, {n} containers: wall ms", d))
        d = {r: [s.wall_ms for s in sc.query[n]["state"][r]] for r in names}
        panels.append((f"state, {n} containers: wall ms", d))

    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10.5, 2.6 * rows), dpi=72)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, data) in zip(axes.flat, panels, strict=False):
        labels = [n for n in data if data[n]]
        bp = ax.boxplot(
            [data[n] for n in labels],
            vert=False,
            patch_artist=True,
            widths=0.6,
            flierprops={"markersize": 2},
            medianprops={"color": "black"},
        )
        for patch, n in zip(bp["boxes"], labels, strict=True):
            patch.set_facecolor(COLORS.get(n, "#999999"))
        ax.set_yticks(range(1, len(labels) + 1), labels)
        ax.set_title(title, fontsize=10)
        # the far tail (another build on the shared cores) would squash the boxes: cut at p98
        every = sorted(x for n in labels for x in data[n])
        ax.set_xlim(0, every[int(len(every) * 0.98)] * 1.05 if every else None)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("hako vs runc vs crun — lower is better", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    _shrink_png(path)


def _shrink_png(path: str) -> None:
    """A 64-colour palette keeps the PNG commit-sized."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


def dump(res: Results, path: str, info: dict) -> None:
    """Every sample as JSON (ms and KiB, rounded)."""

    def s(x: proc.Sample | None) -> list | None:
        return None if x is None else [round(x.wall_ms, 2), round(x.cpu_ms, 2), x.maxrss_kb]

    def lc(x: verbs.Lifecycle) -> dict:
        return {
            "total_ms": round(x.total_ms, 2),
            "cpu_ms": round(x.cpu_ms, 2),
            "create": s(x.create),
            "start": s(x.start),
            "init": s(x.init),
            "delete": s(x.delete),
            "init_rss_kb": x.init_rss_kb,
        }

    out = {
        "info": info,
        "sample_format": "[wall_ms, cpu_ms, maxrss_kb]",
        "lifecycle": {
            ("netns" if k else "no_netns"): {n: [lc(x) for x in v] for n, v in d.items()}
            for k, d in res.lifecycle.items()
        },
        "floor": {
            ("netns" if k else "no_netns"): {n: [s(x) for x in v] for n, v in d.items()}
            for k, d in res.floor.items()
        },
        "run": {n: [s(x) for x in v] for n, v in res.run.items()},
        "exec": {n: [s(x) for x in v] for n, v in res.exec.items()},
        "seq50_ms": {n: [round(x, 1) for x in v] for n, v in res.seq_ms.items()},
        "par10_ms": {n: [round(x, 1) for x in v] for n, v in res.par_ms.items()},
        "wide100x16": {
            "total_ms": {n: [round(x, 1) for x in v] for n, v in res.at_scale.wide_ms.items()},
            "lifecycles": {n: [lc(x) for x in v] for n, v in res.at_scale.wide.items()},
        },
        "scale": {
            str(count): {q: {n: [s(x) for x in v] for n, v in d.items()} for q, d in byq.items()}
            for count, byq in res.at_scale.query.items()
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))


def now() -> str:
    """UTC date and time for the report."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
