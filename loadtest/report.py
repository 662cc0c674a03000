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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = summary.get("latency_over_time", [])
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for key in ("p50", "p95", "p99"):
        axis.plot([r["t"] for r in rows], [r[key] for r in rows], marker=".", label=key)
    axis.axhline(summary["options"]["p95_ms"], color="grey", linestyle="--", linewidth=1, label="p95 limit")
    axis.set_xlabel("send time since the first window's start (s)")
    axis.set_ylabel("fan-out latency (ms)")
    axis.set_title(f"{summary['scenario']} on {summary['target']['name']}: latency percentiles over time")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, out_dir / "latency_over_time.png")
    plt.close(figure)
    written.append("latency_over_time.png")
    steps = summary.get("steps")
    if steps:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        xs = [s["subscribers"] for s in steps]
        for key in ("p50", "p95", "p99"):
            axis.plot(xs, [s["latency_ms"][key] for s in steps], marker="o", label=key)
        axis.axhline(summary["options"]["p95_ms"], color="grey", linestyle="--", linewidth=1, label="p95 limit")
        axis.set_xlabel("subscribers")
        axis.set_ylabel("fan-out latency (ms)")
        axis.set_title(f"stepup on {summary['target']['name']}: max passing {summary.get('max_subscribers')}")
        axis.legend()
        axis.grid(alpha=0.3)
        figure.tight_layout()
        _save(figure, out_dir / "latency_vs_subscribers.png")
        plt.close(figure)
        written.append("latency_vs_subscribers.png")
    return written


def _save(figure: Any, path: Path) -> None:
    """Through a temporary name, so a reader never sees half a PNG."""
    tmp = path.with_name("." + path.name + ".tmp.png")
    figure.savefig(tmp, dpi=110)
    tmp.replace(path)
