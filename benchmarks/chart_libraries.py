"""How much each candidate drawing library costs for the report's charts (docs/design.md, "Reports").

Draws the same ten line charts (20,000 steps each, logged values with noise) with each library
that is installed, in a fresh interpreter per library, and prints: the import time, the time to
draw the ten charts from the raw 20,000 points and from a min/max envelope of them (1,000 points,
what the report draws), and the size of the ten SVGs. Libraries that are not installed are listed
as such. Install sizes are measured separately (``du`` over the installed packages).

    python benchmarks/chart_libraries.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

METRICS = 10
STEPS = 20_000
BUCKETS = 500

_COMMON = textwrap.dedent(
    f"""
    import math, time, json, sys
    METRICS, STEPS, BUCKETS = {METRICS}, {STEPS}, {BUCKETS}
    def series(k):
        xs = list(range(STEPS))
        ys = [math.exp(-x / (2000 + 300 * k)) + 0.05 * math.sin(x * 0.37 + k) for x in xs]
        return xs, ys
    def envelope(xs, ys):
        size = len(xs) / BUCKETS
        out_x, out_y = [], []
        for b in range(BUCKETS):
            lo, hi = int(b * size), int((b + 1) * size)
            idx = range(lo, hi)
            i_min = min(idx, key=ys.__getitem__)
            i_max = max(idx, key=ys.__getitem__)
            for i in sorted({{i_min, i_max}}):
                out_x.append(xs[i]); out_y.append(ys[i])
        return out_x, out_y
    DATA = [series(k) for k in range(METRICS)]
    SMALL = [envelope(xs, ys) for xs, ys in DATA]
    """
)

_CANDIDATES = {
    "matplotlib (SVG backend)": (
        "import matplotlib; matplotlib.use('svg'); from matplotlib.figure import Figure; import io",
        """
def draw(data):
    out = []
    for k, (xs, ys) in enumerate(data):
        fig = Figure(figsize=(4.2, 2.6))
        ax = fig.add_subplot()
        ax.plot(xs, ys, linewidth=1)
        ax.set_title(f"metric_{k}"); ax.set_xlabel("_step")
        buf = io.StringIO(); fig.savefig(buf, format="svg"); out.append(buf.getvalue())
    return out
""",
    ),
    "pygal (js=[])": (
        "import pygal",
        """
def draw(data):
    out = []
    for k, (xs, ys) in enumerate(data):
        chart = pygal.XY(js=[], show_dots=False, show_legend=False, width=420, height=260,
                         title=f"metric_{k}", x_title="_step")
        chart.add(f"metric_{k}", list(zip(xs, ys)))
        out.append(chart.render(is_unicode=True))
    return out
""",
    ),
    "leather": (
        "import leather",
        """
def draw(data):
    import io
    out = []
    for k, (xs, ys) in enumerate(data):
        chart = leather.Chart(f"metric_{k}")
        chart.add_line(list(zip(xs, ys)))
        buf = io.StringIO(); chart.to_svg(buf, width=420, height=260); out.append(buf.getvalue())
    return out
""",
    ),
    "hand-drawn SVG (polyline + ticks)": (
        "",
        """
def draw(data):
    out = []
    for k, (xs, ys) in enumerate(data):
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        sx = 380 / ((x1 - x0) or 1); sy = 200 / ((y1 - y0) or 1)
        pts = " ".join(f"{40 + (x - x0) * sx:.1f},{230 - (y - y0) * sy:.1f}" for x, y in zip(xs, ys))
        ticks = "".join(f'<text x="{40 + i * 95}" y="250">{x0 + i * (x1 - x0) / 4:g}</text>'
                        for i in range(5))
        out.append(f'<svg viewBox="0 0 420 260"><text x="10" y="15">metric_{k}</text>'
                   f'<polyline fill="none" stroke="currentColor" points="{pts}"/>{ticks}</svg>')
    return out
""",
    ),
}

_MEASURE = """
t0 = time.perf_counter()
{imports}
t_import = time.perf_counter() - t0
{draw}
t0 = time.perf_counter(); small = draw(SMALL); t_small = time.perf_counter() - t0
t0 = time.perf_counter(); raw = draw(DATA); t_raw = time.perf_counter() - t0
print(json.dumps({{"import_ms": t_import * 1000, "small_ms": t_small * 1000, "raw_ms": t_raw * 1000,
                  "small_kb": sum(map(len, small)) / 1024, "raw_kb": sum(map(len, raw)) / 1024}}))
"""


def measure(imports: str, draw: str) -> dict[str, float] | str:
    """One candidate, in a fresh interpreter (so its import time is a cold import)."""
    code = _COMMON + _MEASURE.format(imports=imports, draw=draw)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return "not installed" if "ModuleNotFoundError" in last else last
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    print(f"{METRICS} charts x {STEPS} steps; envelope of {BUCKETS} buckets (<= {2 * BUCKETS} points)")
    print(f"{'library':36} {'import':>8} {'draw env.':>10} {'draw raw':>10} {'env. SVG':>9} {'raw SVG':>9}")
    for name, (imports, draw) in _CANDIDATES.items():
        got = measure(imports, draw)
        if isinstance(got, str):
            print(f"{name:36} {got}")
            continue
        print(
            f"{name:36} {got['import_ms']:6.0f}ms {got['small_ms']:8.0f}ms {got['raw_ms']:8.0f}ms "
            f"{got['small_kb']:7.0f}KB {got['raw_kb']:7.0f}KB"
        )


if __name__ == "__main__":
    main()
