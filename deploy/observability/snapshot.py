"""Draw a Grafana dashboard's panels as one static HTML page from a real Prometheus, for a
screenshot where Grafana itself is not at hand (docs/images/):

    python deploy/observability/snapshot.py --prometheus http://127.0.0.1:9090 \\
        --dashboard deploy/observability/grafana/dashboards/vortexcore-overview.json \\
        --minutes 10 --out /tmp/dashboard.html
    chromium --headless --screenshot=docs/images/grafana-overview.png \\
        --window-size=1400,2200 /tmp/dashboard.html

Each panel's PromQL runs as a range query (the same expressions Grafana runs); series are
drawn as SVG lines, a state timeline as coloured bands. Only a picture: Grafana is the tool.
"""

from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path
from typing import Any

import httpx

WIDTH, HEIGHT, PAD = 640, 220, 36
COLOURS = ["#3274d9", "#e0752d", "#56a64b", "#a352cc", "#f2cc0c", "#de314d", "#8ab8ff", "#7eb26d"]
STATE_COLOURS = {0: "#56a64b", 1: "#f2cc0c", 2: "#de314d"}


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    """The matrix Prometheus answers for `expr` over [start, end]."""
    step = max(5.0, (end - start) / 120)
    answer = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=30,
    )
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's `{{label}}` legend format."""
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out if "{{" not in out else (json.dumps(labels) if labels else template)


def _lines(series: list[tuple[str, list[tuple[float, float]]]], start: float, end: float) -> str:
    values = [v for _, points in series for _, v in points] or [0.0]
    top = max(values) or 1.0
    top = top * 1.1
    parts = [
        f'<text x="4" y="{PAD}" class="axis">{top:.3g}</text>',
        f'<text x="4" y="{HEIGHT - PAD + 4}" class="axis">0</text>',
    ]
    for i, (name, points) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        xy = " ".join(
            f"{PAD + (t - start) / (end - start) * (WIDTH - 2 * PAD):.1f},"
            f"{HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD):.1f}"
            for t, v in points
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{xy}"/>')
        parts.append(
            f'<text x="{PAD + 150 * (i % 4)}" y="{HEIGHT - 8 - 14 * (i // 4)}" '
            f'fill="{colour}" class="legend">{html.escape(name[:24])}</text>'
        )
    return "".join(parts)


def _states(series: list[tuple[str, list[tuple[float, float]]]], start: float, end: float) -> str:
    parts, band = [], (HEIGHT - 2 * PAD) / max(1, len(series))
    for i, (name, points) in enumerate(series):
        y = PAD + i * band
        for j, (t, v) in enumerate(points):
            t_next = points[j + 1][0] if j + 1 < len(points) else end
            x0 = PAD + 60 + (t - start) / (end - start) * (WIDTH - 2 * PAD - 60)
            x1 = PAD + 60 + (t_next - start) / (end - start) * (WIDTH - 2 * PAD - 60)
            colour = STATE_COLOURS.get(int(v), "#888")
            parts.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0):.1f}" '
                f'height="{band - 4:.1f}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="4" y="{y + band / 2:.1f}" class="legend">{html.escape(name)}</text>'
        )
    return "".join(parts)


def panel_svg(panel: dict[str, Any], prometheus: str, start: float, end: float) -> str:
    """One panel: its title and its series over the window."""
    series: list[tuple[str, list[tuple[float, float]]]] = []
    for target in panel["targets"]:
        for item in query_range(prometheus, target["expr"], start, end):
            points = [(float(t), float(v)) for t, v in item["values"] if v not in ("NaN", "+Inf")]
            series.append((legend(target.get("legendFormat", ""), item["metric"]), points))
    if not series:
        body = f'<text x="{WIDTH / 2 - 30}" y="{HEIGHT / 2}" class="axis">No data</text>'
    elif panel["type"] == "state-timeline":
        body = _states(series, start, end)
    elif panel["type"] == "stat":
        body = "".join(
            f'<text x="{PAD + 150 * i}" y="{HEIGHT / 2}" class="stat">'
            f"{points[-1][1] if points else 0:.0f}</text>"
            f'<text x="{PAD + 150 * i}" y="{HEIGHT / 2 + 24}" class="legend">'
            f"{html.escape(name)}</text>"
            for i, (name, points) in enumerate(series)
        )
    else:
        body = _lines(series, start, end)
    title = html.escape(panel["title"])
    return (
        f'<div class="panel"><div class="title">{title}</div>'
        f'<svg width="{WIDTH}" height="{HEIGHT}">{body}</svg></div>'
    )


def render(dashboard: dict[str, Any], prometheus: str, minutes: float) -> str:
    """The whole page."""
    end = time.time()
    start = end - minutes * 60
    panels = "".join(panel_svg(p, prometheus, start, end) for p in dashboard["panels"])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ background:#111217; color:#ccccdc; font-family:sans-serif; margin:16px; }}
h1 {{ font-size:20px; font-weight:500; }} .grid {{ display:flex; flex-wrap:wrap; gap:12px; }}
.panel {{ background:#181b1f; border:1px solid #2c3235; border-radius:4px; padding:8px; }}
.title {{ font-size:14px; margin-bottom:4px; }} .axis {{ fill:#8e8e8e; font-size:11px; }}
.legend {{ font-size:11px; fill:#ccccdc; }} .stat {{ font-size:40px; fill:#56a64b; }}
</style></head><body><h1>{html.escape(dashboard["title"])} <small>(last {minutes:g} min,
{stamp}, drawn from Prometheus by deploy/observability/snapshot.py)</small></h1>
<div class="grid">{panels}</div></body></html>"""


def main() -> None:
    """Parse arguments and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dashboard = json.loads(args.dashboard.read_text())
    args.out.write_text(render(dashboard, args.prometheus.rstrip("/"), args.minutes))


if __name__ == "__main__":
    main()
