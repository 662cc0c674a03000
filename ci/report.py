"""`vhil report`: the index of all runs under reports/: index.json and index.html with the latest run's
matrix (as an SVG grid), each cell's headline numbers and links, and what changed since the previous run."""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

from hil.artifacts import REPORTS_ROOT, atomic_write_json, atomic_write_text

STATUS_COLORS = {"pass": "#2e9e44", "fail": "#d43c3c", "error": "#8b1e1e", "timeout": "#b05f00",
                 "unavailable": "#c9c9c9", "interrupted": "#777777"}
# what a cell's folder may hold, in the order the index links them (each suite writes its own subset)
REPORT_FILES = ("report.html", "contract.html", "autobahn/index.html", "latency_over_time.png", "latency_vs_subscribers.png",
                "summary.json", "junit.xml", "contract-junit.xml", "cell.log")
HEADLINE_KEYS = ("verdict", "passed", "failed", "errors", "skipped", "delivery_ratio", "delivered_per_s", "p95_ms")


def load_runs(root: Path) -> list[dict[str, Any]]:
    """Every run with a matrix.json, oldest first (run ids sort by time)."""
    runs = []
    for path in sorted(root.glob("*/matrix.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a run being written right now, or a damaged one: the index skips it
    return runs


def headline(cell: dict[str, Any]) -> dict[str, Any]:
    """Numbers worth a glance, from the cell's own summary.json where it wrote one."""
    try:
        summary = json.loads((Path(cell["out_dir"]) / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    numbers = dict(summary.get("totals") or summary.get("counts") or {})
    for key in HEADLINE_KEYS:
        value = summary.get(key)
        if isinstance(value, (int, float, str, bool)):
            numbers[key] = value
    return numbers


def diff_runs(previous: dict[str, Any] | None, latest: dict[str, Any]) -> list[dict[str, Any]]:
    if previous is None:
        return []
    before = {(c["target"], c["suite"]): c for c in previous["cells"]}
    changes = []
    for cell in latest["cells"]:
        old = before.get((cell["target"], cell["suite"]))
        if old is None:
            changes.append({"target": cell["target"], "suite": cell["suite"], "was": None, "now": cell["status"]})
        elif old["status"] != cell["status"] or headline(old) != headline(cell):
            changes.append({"target": cell["target"], "suite": cell["suite"], "was": old["status"], "now": cell["status"],
                            "numbers_was": headline(old), "numbers_now": headline(cell)})
    return changes


def matrix_svg(cells: list[dict[str, Any]]) -> str:
    targets = list(dict.fromkeys(c["target"] for c in cells))
    suites = list(dict.fromkeys(c["suite"] for c in cells))
    width, height, left, top = 110, 34, 150, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width * len(suites) + 10}" '
             f'height="{top + height * len(targets) + 10}" font-family="sans-serif" font-size="13">']
    for column, suite in enumerate(suites):
        parts.append(f'<text x="{left + column * width + width / 2}" y="20" text-anchor="middle">{html.escape(suite)}</text>')
    for row, target in enumerate(targets):
        y = top + row * height
        parts.append(f'<text x="{left - 8}" y="{y + 22}" text-anchor="end">{html.escape(target)}</text>')
        for column, suite in enumerate(suites):
            cell = next((c for c in cells if c["target"] == target and c["suite"] == suite), None)
            if cell is None:
                continue
            x = left + column * width
            color = STATUS_COLORS.get(cell["status"], "#999")
            parts.append(f'<rect x="{x + 2}" y="{y + 2}" width="{width - 4}" height="{height - 4}" rx="4" fill="{color}">'
                         f'<title>{html.escape(cell["reason"] or cell["status"])}</title></rect>')
            parts.append(f'<text x="{x + width / 2}" y="{y + 22}" text-anchor="middle" fill="white">{cell["status"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_index(root: Path = REPORTS_ROOT) -> dict[str, Any] | None:
    runs = load_runs(root)
    if not runs:
        return None
    latest = runs[-1]
    previous = runs[-2] if len(runs) > 1 else None
    cells = [dict(c, headline=headline(c)) for c in latest["cells"]]
    index = {
        "latest": latest["run_id"],
        "finished": latest.get("finished", False),
        "cells": cells,
        "changes_since": previous["run_id"] if previous else None,
        "changes": diff_runs(previous, latest),
        "runs": [{"run_id": r["run_id"], "statuses": {f'{c["target"]}/{c["suite"]}': c["status"] for c in r["cells"]}}
                 for r in runs],
    }
    atomic_write_json(root / "index.json", index)
    atomic_write_text(root / "index.html", _html(index, root))
    return index


def _link(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def _html(index: dict[str, Any], root: Path) -> str:
    rows = []
    for cell in index["cells"]:
        out = Path(cell["out_dir"])
        links = [f'<a href="{_link(str(out / name), root)}">{name}</a>'
                 for name in REPORT_FILES
                 if (out / name).exists()]
        numbers = ", ".join(f"{k}: {v}" for k, v in cell["headline"].items())
        ran_on = f' on {html.escape(cell["board"])}' if cell.get("board") else ""  # sharded over a farm
        rows.append(f'<tr><td>{html.escape(cell["target"])}{ran_on}</td><td>{cell["suite"]}</td>'
                    f'<td style="color:{STATUS_COLORS.get(cell["status"], "#000")}"><b>{cell["status"]}</b></td>'
                    f'<td>{cell["seconds"]:.1f} s</td><td>{html.escape(numbers)}</td>'
                    f'<td>{html.escape(cell["reason"])}</td><td>{" ".join(links)}</td></tr>')
    changes = "".join(
        f'<li>{html.escape(c["target"])} / {c["suite"]}: {c["was"]} &rarr; {c["now"]}'
        + (f' ({html.escape(json.dumps(c.get("numbers_was")))} &rarr; {html.escape(json.dumps(c.get("numbers_now")))})'
           if c.get("numbers_was") != c.get("numbers_now") else "") + "</li>"
        for c in index["changes"]) or "<li>none</li>"
    history = "".join(
        f'<tr><td>{r["run_id"]}</td><td>{html.escape(", ".join(f"{k}: {v}" for k, v in r["statuses"].items()))}</td></tr>'
        for r in reversed(index["runs"]))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ViperHTTP HIL reports</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}}</style>
</head><body><h1>ViperHTTP HIL reports</h1>
<h2>Run {index["latest"]}{"" if index["finished"] else " (still running)"}</h2>
{matrix_svg(index["cells"])}
<table><tr><th>target</th><th>suite</th><th>status</th><th>time</th><th>numbers</th><th>reason</th><th>reports</th></tr>
{"".join(rows)}</table>
<h2>Changes since {index["changes_since"] or "(no previous run)"}</h2><ul>{changes}</ul>
<h2>All runs</h2><table>{history}</table></body></html>
"""


def _run(args: argparse.Namespace) -> int:
    index = write_index(Path(args.reports))
    if index is None:
        print(f"vhil report: no runs under {args.reports} (run `vhil matrix` first)")
        return 2
    print(f"{Path(args.reports) / 'index.html'}: run {index['latest']}, {len(index['changes'])} change(s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="rebuild reports/index.html and index.json", description=__doc__)
    parser.add_argument("--reports", default=str(REPORTS_ROOT), metavar="DIR", help="reports root (default reports/)")
    parser.set_defaults(func=_run)
