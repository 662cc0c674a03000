"""Writing run artifacts: atomic files, run ids, report folders, JUnit XML.

Everything a run writes goes through here so that a crash or Ctrl-C leaves either the previous
complete file or the new complete file, never a torn one.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from xml.sax.saxutils import escape, quoteattr

REPORTS_ROOT = Path("reports")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def new_run_id() -> str:
    """Sortable and unique: UTC time to the second plus a short random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def target_slug(target_name: str) -> str:
    """A folder name for a target name such as `board:esp1` or `url:ws://127.0.0.1:8765`."""
    slug = re.sub(r"^(url:)?wss?://", r"\1", target_name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug).strip("-")
    return slug or "target"


def default_out_dir(target_name: str, suite: str, run_id: str | None = None) -> Path:
    return REPORTS_ROOT / (run_id or os.environ.get("VHIL_RUN_ID") or new_run_id()) / target_slug(target_name) / suite


@dataclass
class JUnitCase:
    name: str
    classname: str
    seconds: float = 0.0
    failure: str | None = None  # message of a failed case
    error: str | None = None  # message of a case that could not run properly
    skipped: str | None = None  # reason, for a case not run
    details: str = ""  # body of the failure/error element
    system_out: str = ""


def junit_xml(suite_name: str, cases: Iterable[JUnitCase], seconds: float = 0.0) -> str:
    cases = list(cases)
    failures = sum(1 for c in cases if c.failure is not None)
    errors = sum(1 for c in cases if c.error is not None)
    skipped = sum(1 for c in cases if c.skipped is not None)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<testsuites>",
        f"<testsuite name={quoteattr(suite_name)} tests=\"{len(cases)}\" failures=\"{failures}\" "
        f"errors=\"{errors}\" skipped=\"{skipped}\" time=\"{seconds:.3f}\">",
    ]
    for case in cases:
        lines.append(
            f"  <testcase classname={quoteattr(case.classname)} name={quoteattr(case.name)} time=\"{case.seconds:.3f}\">"
        )
        if case.failure is not None:
            lines.append(f"    <failure message={quoteattr(case.failure)}>{escape(case.details)}</failure>")
        if case.error is not None:
            lines.append(f"    <error message={quoteattr(case.error)}>{escape(case.details)}</error>")
        if case.skipped is not None:
            lines.append(f"    <skipped message={quoteattr(case.skipped)}/>")
        if case.system_out:
            lines.append(f"    <system-out>{escape(case.system_out)}</system-out>")
        lines.append("  </testcase>")
    lines += ["</testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def write_junit(path: Path, suite_name: str, cases: Iterable[JUnitCase], seconds: float = 0.0) -> None:
    atomic_write_text(path, junit_xml(suite_name, cases, seconds))
