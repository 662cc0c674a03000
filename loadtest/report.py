"""Report files of a load run: locust CSV/HTML (with the verdict), PNG plots. summary.json is written by the CLI."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hil.artifacts import atomic_write_text


def verdict_banner(summary: dict[str, Any]) -> str:
    verdict = summary["verdict"]
    colour = "#1b7f3b" if verdict["ok"] else "#b3261e"
    rows = "".join(f"<li>{'PASS' if c['ok'] else 'FAIL'} {html.escape(c['name'])}: {html.escape(c['detail'])}</li>"
                   for c in verdict["checks"])
    headline = (f"vhil load {html.escape(summary['scenario'])} on {html.escape(summary['target']['name'])}: "
                f"{'verdict holds' if verdict['ok'] else 'verdict FAILED'}")
    return (f'<div id="vhil-verdict" style="font-family:sans-serif;padding:12px;border:3px solid {colour};margin:8px">'
            f'<h2 style="color:{colour};margin:0 0 6px 0">{headline}</h2><ul>{rows}</ul>'
            f"<p>Exact latency (raw samples): {html.escape(str(summary['latency_ms']))}</p></div>")


def write_html(environment: Any, summary: dict[str, Any], path: Path) -> None:
    """Locust's own HTML report with the verdict inserted at the top of the body."""
    from locust.html import get_html_report

    page = get_html_report(environment, show_download_link=False)
    banner = verdict_banner(summary)
    index = page.find("<body")
    if index >= 0:
        close = page.find(">", index) + 1
        page = page[:close] + banner + page[close:]
    else:
        page = banner + page
    atomic_write_text(path, page)


def write_plots(out_dir: Path, summary: dict[str, Any]) -> list[str]:
    """latency_over_time.png always; latency_vs_subscribers.png for stepup. Returns the file names written."""
    rows = summary.get("latency_over_time", [])
    written = [_percentile_plot(out_dir / "latency_over_time.png", [r["t"] for r in rows], rows, summary,
                                "send time since the first window's start (s)",
                                f"{summary['scenario']} on {summary['target']['name']}: latency percentiles over time")]
    steps = summary.get("steps")
    if steps:
        written.append(_percentile_plot(out_dir / "latency_vs_subscribers.png", [s["subscribers"] for s in steps],
                                        [s["latency_ms"] for s in steps], summary, "subscribers",
                                        f"stepup on {summary['target']['name']}: max passing {summary.get('max_subscribers')}"))
    return written


def latency_axis_top(latencies: list[float | None], limit: float) -> tuple[float, bool]:
    """The latency axis' top, scaled to the data, and whether the p95 limit is drawn in it: a limit far above the
    measured latencies would flatten every line along zero, so it is then named in a corner instead."""
    top = max((v for v in latencies if v is not None), default=1.0) * 1.15 or 1.0
    if limit <= top * 1.5:
        return max(top, limit * 1.05), True
    return top, False


def _percentile_plot(path: Path, xs: list[float], rows: list[dict[str, Any]], summary: dict[str, Any], xlabel: str,
                     title: str) -> str:
    """p50/p95/p99 against `xs` with the p95 limit drawn; saved through a temporary name (no half-written PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.5))
    for key in ("p50", "p95", "p99"):
        axis.plot(xs, [row[key] for row in rows], marker=".", label=key)
    limit = summary["options"]["p95_ms"]
    top, limit_in_view = latency_axis_top([row.get(key) for row in rows for key in ("p50", "p95", "p99")], limit)
    if limit_in_view:
        axis.axhline(limit, color="grey", linestyle="--", linewidth=1, label="p95 limit")
    else:
        axis.annotate(f"p95 limit {limit:g} ms (above the plot)", xy=(0.99, 0.97), xycoords="axes fraction",
                      ha="right", va="top", color="grey")
    axis.set_ylim(0, top)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("fan-out latency (ms)")
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(path)
    return path.name
