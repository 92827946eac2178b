#!/usr/bin/env python3
"""Draws a real-load autoscaling run as an SVG: requests per second and p99
latency above, replicas (what the HPA asks for, and Ready) below, one shared
time axis, with the run's moments marked (first scale-up, all Ready, every
pod taking traffic, load dropped).

    bench/autoscaling/plot.py RUN.csv RUN.json OUT.svg

RUN.csv and RUN.json are what tests/e2e/tests/node/scaling.rs writes under
BERTH_BENCH_OUT (bench/autoscaling/real-load.sh). Standard library only: no
plotting package is needed to redraw it.
"""

import csv
import json
import sys

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP = 60, 60, 40
PANEL = 140
GAP = 50
COLOURS = {"requests": "#1f77b4", "p99": "#d62728", "desired": "#ff7f0e", "ready": "#2ca02c"}


def usage(message):
    sys.exit(f"plot.py: {message}\nusage: bench/autoscaling/plot.py RUN.csv RUN.json OUT.svg")


def read(csv_path, json_path):
    try:
        with open(csv_path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        with open(json_path) as f:
            figures = json.load(f)
    except (OSError, ValueError) as e:
        usage(f"cannot read the run: {e} (run bench/autoscaling/real-load.sh first)")
    if not rows:
        usage(f"{csv_path} has no rows")
    return rows, figures


def nice_max(value):
    """The smallest 1, 2 or 5 times a power of ten at or above value."""
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for m in (1, 2, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def polyline(points, colour, dash=None, step=False):
    if step:
        stepped = []
        for i, (x, y) in enumerate(points):
            if i:
                stepped.append((x, points[i - 1][1]))
            stepped.append((x, y))
        points = stepped
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} points="{path}"/>'


def text(x, y, s, anchor="start", size=12, colour="#333"):
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{colour}" text-anchor="{anchor}">{s}</text>'


def draw(rows, figures):
    t_max = max(r["second"] for r in rows) or 1
    plot_w = WIDTH - LEFT - RIGHT
    x = lambda t: LEFT + plot_w * t / t_max
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'font-family="sans-serif" viewBox="0 0 {WIDTH} {HEIGHT}">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    name = figures.get("scenario", "run")
    target = figures.get("p99_target_ms")
    dropped = figures.get("load_dropped_s", t_max)
    after = sorted(r["requests"] for r in rows[:-1] if r["second"] > dropped + 1)
    trickle = f", then {after[len(after) // 2]:g} req/s" if after else ""
    out.append(text(LEFT, 22, f"item under real load, autoscaling on {name}: "
                    f"{figures.get('rate')} req/s{trickle}", size=14))

    # Top panel: requests per second (left axis) and p99 latency (right axis).
    top, bottom = TOP, TOP + PANEL
    r_max = nice_max(max(r["requests"] for r in rows) or 1)
    l_max = nice_max(max(max(r["p99_ms"] for r in rows), target or 0) or 1)
    y_r = lambda v: bottom - PANEL * v / r_max
    y_l = lambda v: bottom - PANEL * v / l_max
    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#ccc"/>')
    out.append(polyline([(x(r["second"]), y_r(r["requests"])) for r in rows], COLOURS["requests"]))
    out.append(polyline([(x(r["second"]), y_l(r["p99_ms"])) for r in rows if r["requests"]], COLOURS["p99"]))
    if target:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_l(target):.1f}" y2="{y_l(target):.1f}" '
                   f'stroke="{COLOURS["p99"]}" stroke-dasharray="2,4"/>')
    out.append(text(LEFT - 6, top + 10, f"{r_max:g}", "end", colour=COLOURS["requests"]))
    out.append(text(LEFT - 6, bottom, "0", "end"))
    out.append(text(LEFT + plot_w + 6, top + 10, f"{l_max:g} ms", colour=COLOURS["p99"]))
    out.append(text(LEFT + 4, top + 14, "requests/s", colour=COLOURS["requests"]))
    out.append(text(LEFT + 90, top + 14, "p99 latency" + (f" (dotted: {target} ms target)" if target else ""),
                    colour=COLOURS["p99"]))

    # Bottom panel: replicas.
    top2 = bottom + GAP
    bottom2 = top2 + PANEL
    n_max = max(max(r["desired"], r["ready"]) for r in rows) + 1
    y_n = lambda v: bottom2 - PANEL * v / n_max
    out.append(f'<rect x="{LEFT}" y="{top2}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#ccc"/>')
    for n in range(int(n_max) + 1):
        out.append(text(LEFT - 6, y_n(n) + 4, str(n), "end"))
    out.append(polyline([(x(r["second"]), y_n(r["desired"])) for r in rows], COLOURS["desired"], "6,3", step=True))
    out.append(polyline([(x(r["second"]), y_n(r["ready"])) for r in rows], COLOURS["ready"], step=True))
    out.append(text(LEFT + 4, top2 + 14, "replicas the HPA asks for", colour=COLOURS["desired"]))
    out.append(text(LEFT + 180, top2 + 14, "Ready pods", colour=COLOURS["ready"]))

    # Moments of the run, across both panels.
    moments = [("first scale-up", figures.get("first_scale_up_s")), ("all Ready", figures.get("all_ready_s")),
               ("all take traffic", figures.get("all_taking_traffic_s")),
               ("load dropped", figures.get("load_dropped_s"))]
    for i, (label, t) in enumerate(moments):
        if t is None:
            continue
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom2}" stroke="#999" stroke-dasharray="3,3"/>')
        out.append(text(x(t) + 3, bottom + 14 + 13 * i, label, size=11, colour="#666"))

    for t in range(0, int(t_max) + 1, 10 if t_max <= 200 else 30):
        out.append(text(x(t), bottom2 + 16, str(t), "middle", size=11))
    out.append(text(LEFT + plot_w / 2, bottom2 + 34, "seconds since the load started", "middle"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        usage("expected three arguments")
    rows, figures = read(sys.argv[1], sys.argv[2])
    with open(sys.argv[3], "w") as f:
        f.write(draw(rows, figures))


if __name__ == "__main__":
    main()
