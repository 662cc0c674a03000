"""ruff over the whole repository and mypy over the host-side packages, as configured in pyproject.toml.

Before landing: `ruff check . && mypy` (`ruff check --fix .` removes unused imports).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_TIMEOUT_S = 240


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=LINT_TIMEOUT_S, check=False)


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check . found:\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing() -> None:
    # the cache lives in the checkout (.mypy_cache), so a second run here takes seconds instead of ~20
    result = run_tool("mypy")
    assert result.returncode == 0, f"mypy found:\n{result.stdout}{result.stderr}"
