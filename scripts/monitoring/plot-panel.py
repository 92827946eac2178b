#!/usr/bin/env python3
"""Draws panels of a Berth Grafana dashboard as a PNG, from the local
Prometheus, without Grafana: each panel's expressions as the dashboard has
them, its legend format, unit and dashed lines, one panel under the other on a
shared time axis (seconds from the start of the window).

    scripts/monitoring/plot-panel.py [--panel TITLE]... [--namespace NS] [--microservice MS]
        [--minutes N | --start UNIX [--end UNIX]] [--output PNG]

Default: "Request rate" above "Replicas: current, ready, desired, min, max" of
charts/berth-operator/dashboards/berth-services.json, for ms/item in namespace
shop, over the last 10 minutes, a point every 5 s. The dashboard's variables
are filled in: $namespace and $microservice (regular expressions, as the
dashboard matches them with =~), $__rate_interval (--rate-interval, 1m) and
$__interval (--step). `make monitoring-plot ARGS="..."` runs it in a venv with
matplotlib (scripts/monitoring/requirements.txt).

Fails (exit 1) when Prometheus does not answer, a panel title is not in the
dashboard, or a panel has no data in the window.
"""

import argparse
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(REPO, "charts/berth-operator/dashboards/berth-services.json")
PANELS = ["Request rate", "Replicas: current, ready, desired, min, max"]
# Grafana units as an axis label; any other unit is shown as it is.
UNITS = {
    "reqps": "requests/s",
    "short": "",
    "none": "",
    "s": "seconds",
    "ms": "milliseconds",
    "percentunit": "ratio",
    "percent": "%",
    "bytes": "bytes",
}


def fail(message):
    sys.exit(f"plot-panel.py: {message}")


def duration_seconds(text):
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h)", text)
    if not m:
        fail(f"'{text}' is not a duration such as 5s, 1m or 500ms")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def arguments():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dashboard", default=DASHBOARD, help="a Grafana dashboard's JSON (default: %(default)s)")
    p.add_argument(
        "--panel",
        action="append",
        metavar="TITLE",
        help=f"a panel's title; repeat for panels one under the other (default: {' / '.join(PANELS)})",
    )
    p.add_argument("--namespace", default="shop", help="$namespace (default: %(default)s)")
    p.add_argument("--microservice", default="item", help="$microservice (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=10, help="window: this many minutes up to --end (default: %(default)s)")
    p.add_argument("--start", type=float, help="window start, unix seconds (instead of --minutes)")
    p.add_argument("--end", type=float, help="window end, unix seconds (default: now)")
    p.add_argument("--step", default="5s", help="query_range step, also $__interval (default: %(default)s)")
    p.add_argument("--rate-interval", default="1m", help="$__rate_interval (default: %(default)s)")
    p.add_argument(
        "--prometheus",
        default=f"http://127.0.0.1:{os.environ.get('BERTH_PROMETHEUS_PORT', '9090')}",
        help="Prometheus' base URL (default: %(default)s, BERTH_PROMETHEUS_PORT)",
    )
    p.add_argument("--output", help="the PNG to write (default: target/monitoring/NAMESPACE-MICROSERVICE.png)")
    p.add_argument("--width", type=float, default=10, help="inches, at 100 dpi (default: %(default)s)")
    a = p.parse_args()
    a.panel = a.panel or PANELS
    a.end = a.end if a.end is not None else time.time()
    a.start = a.start if a.start is not None else a.end - a.minutes * 60
    # Whole seconds: the points fall on start + k * step, exactly.
    a.start, a.end = float(math.floor(a.start)), float(math.floor(a.end))
    if a.start >= a.end:
        fail(f"the window is empty: start {a.start} is not before end {a.end}")
    duration_seconds(a.step)
    duration_seconds(a.rate_interval)
    a.output = a.output or os.path.join("target", "monitoring", f"{a.namespace}-{a.microservice}.png")
    return a


def find_panels(dashboard, titles):
    try:
        with open(dashboard) as f:
            board = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read the dashboard {dashboard}: {e}")
    panels = []
    # Panels in rows that are collapsed sit inside the row.
    for panel in board.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    by_title = {p.get("title"): p for p in panels if p.get("targets")}
    found = []
    for title in titles:
        if title not in by_title:
            known = "\n  ".join(sorted(t for t in by_title if t))
            fail(f"no panel titled '{title}' with queries in {dashboard}; its panels:\n  {known}")
        found.append(by_title[title])
    return found


def fill_variables(expr, variables):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            fail(f"the expression uses ${name}, which this script does not fill in: {expr}")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
    url = f"{base}/api/v1/query_range"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=params.encode()), timeout=30) as r:
            answer = json.load(r)
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        fail(f"Prometheus refused the query ({e.code}): {detail}\n  query: {expr}")
    except (urllib.error.URLError, OSError) as e:
        fail(f"Prometheus does not answer at {base}: {e} (make prometheus-up; make prometheus-status)")
    if answer.get("status") != "success":
        fail(f"Prometheus: {answer.get('error')}\n  query: {expr}")
    return answer["data"]["result"]


def legend(fmt, labels):
    if not fmt or fmt == "__auto":
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return f"{labels.get('__name__', '')}{{{inner}}}"
    return re.sub(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def style(panel, name):
    """The panel's line style for a series: its defaults, then each override
    that matches the series' display name (byName, byRegexp)."""
    config = panel.get("fieldConfig", {})
    custom = config.get("defaults", {}).get("custom", {})
    s = {"fill": custom.get("fillOpacity", 0) / 100, "dashed": False, "width": custom.get("lineWidth", 1)}
    for override in config.get("overrides", []):
        matcher = override.get("matcher", {})
        pattern = str(matcher.get("options", ""))
        if matcher.get("id") == "byName":
            hit = name == pattern
        elif matcher.get("id") == "byRegexp":
            m = re.fullmatch(r"/(.*)/([a-z]*)", pattern)
            hit = bool(re.search(m.group(1), name) if m else re.fullmatch(pattern, name))
        else:
            hit = False
        if not hit:
            continue
        for prop in override.get("properties", []):
            if prop.get("id") == "custom.lineStyle":
                s["dashed"] = prop.get("value", {}).get("fill") == "dash"
            elif prop.get("id") == "custom.fillOpacity":
                s["fill"] = prop.get("value", 0) / 100
            elif prop.get("id") == "custom.lineWidth":
                s["width"] = prop.get("value", 1)
    return s


def series_of(panel, args, variables):
    """Every series of the panel's queries: (name, [(t, value)])."""
    out = []
    for target in panel["targets"]:
        if target.get("hide") or not target.get("expr"):
            continue
        expr = fill_variables(target["expr"], variables)
        result = query_range(args.prometheus, expr, args.start, args.end, args.step)
        if not result:
            print(f"  (no data) {expr}", file=sys.stderr)
        for r in sorted(result, key=lambda r: sorted(r["metric"].items())):
            points = [(round(float(t) - args.start, 3), float(v)) for t, v in r["values"]]
            out.append((legend(target.get("legendFormat", ""), r["metric"]), points))
    return out


def main():
    args = arguments()
    panels = find_panels(args.dashboard, args.panel)
    variables = {
        "namespace": args.namespace,
        "microservice": args.microservice,
        "__rate_interval": args.rate_interval,
        "__interval": args.step,
    }
    drawn = [(panel, series_of(panel, args, variables)) for panel in panels]
    empty = [panel["title"] for panel, series in drawn if not series]
    if empty:
        window = f"{args.start:.0f}..{args.end:.0f}"
        fail(
            f"no data for {', '.join(repr(t) for t in empty)} (namespace {args.namespace}, "
            f"microservice {args.microservice}, window {window}): is it scraped? curl -s {args.prometheus}/api/v1/targets"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    step = duration_seconds(args.step)
    fig, axes = plt.subplots(
        len(drawn), 1, sharex=True, figsize=(args.width, 0.6 + 3.2 * len(drawn)), dpi=100, squeeze=False
    )
    for ax, (panel, series) in zip(axes[:, 0], drawn):
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        top = 0.0
        for name, points in series:
            s = style(panel, name)
            # A missing point is a gap, as in the panel (spanNulls false).
            grid, have = [], dict(points)
            n = int(round((args.end - args.start) / step))
            for i in range(n + 1):
                t = round(i * step, 3)
                grid.append((t, have.get(t, math.nan)))
            ts, vs = [t for t, _ in grid], [v for _, v in grid]
            (line,) = ax.plot(ts, vs, label=name, linewidth=1.5 * s["width"], linestyle="--" if s["dashed"] else "-")
            if s["fill"] > 0:
                ax.fill_between(ts, vs, 0, color=line.get_color(), alpha=s["fill"], linewidth=0)
            finite = [v for v in vs if math.isfinite(v)]
            if finite:
                top = max(top, max(finite))
                print(f"  {panel['title']} | {name}: min {min(finite):g}, max {max(finite):g}, last {finite[-1]:g}")
        if defaults.get("custom", {}).get("axisSoftMin") == 0:
            ax.set_ylim(bottom=0, top=top * 1.12 if top > 0 else 1)
        if defaults.get("decimals") == 0:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        unit = defaults.get("unit", "")
        ax.set_ylabel(UNITS.get(unit, unit))
        ax.set_title(panel["title"], loc="left", fontsize=11)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
        ax.set_xlim(0, args.end - args.start)
    start_utc = datetime.fromtimestamp(args.start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    axes[-1, 0].set_xlabel(f"seconds from {start_utc} (unix {args.start:.0f}); a point every {args.step}")
    fig.suptitle(
        f"{args.namespace}/{args.microservice}: {os.path.basename(args.dashboard)}, from Prometheus",
        x=0.01,
        ha="left",
        fontsize=10,
        color="0.35",
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
