"""The core tests (tests/core/) inside the MicroPython VM: the same test code that pytest runs on CPython, run by
MicroPython's unittest on the framework compiled with mpy-cross, so a construct CPython accepts and MicroPython
does not fails here before a board is involved (the first run found `ConnectionError`, which MicroPython does not
define, raised by the protocol and the server). One pytest test per core test, each with the VM's verdict."""
from __future__ import annotations

import re
import sys
import unittest
from pathlib import Path

import pytest

from hil.targets.mpy import MpyTarget, framework_modules, run_in_vm

TESTS_DIR = Path(__file__).resolve().parent
CORE_DIR = TESTS_DIR / "core"
RUN_TIMEOUT_S = 120.0
RESULT_LINE = re.compile(r"^(PASS|FAIL|ERROR) ([\w.]+)(?:: (.*))?$")

def core_modules() -> list[str]:
    sys.path.insert(0, str(CORE_DIR))  # vm_runner.MODULES is the list the VM runs
    try:
        import vm_runner
    finally:
        sys.path.remove(str(CORE_DIR))
    return list(vm_runner.MODULES)


def core_test_ids() -> list[str]:
    """module.Class.test for every core test, as CPython's unittest finds them (the VM must run the same set)."""
    ids = []
    for module_name in core_modules():
        suite = unittest.defaultTestLoader.loadTestsFromName(module_name)
        stack = [suite]
        while stack:
            for item in stack.pop():
                if isinstance(item, unittest.TestSuite):
                    stack.append(item)
                else:
                    ids.append(f"{module_name}.{type(item).__name__}.{item._testMethodName}")
    return sorted(ids)


sys.path.insert(0, str(CORE_DIR))
CORE_TEST_IDS = core_test_ids()


@pytest.fixture(scope="module")
def vm_results() -> dict[str, tuple[str, str]]:
    available = MpyTarget(name="mpy").availability()
    if not available.ok:
        pytest.skip(available.reason)
    modules = framework_modules() + [(TESTS_DIR / "wsframes.py", "wsframes.py")]
    modules += [(path, path.name) for path in sorted(CORE_DIR.glob("*.py"))]
    finished = run_in_vm(modules, "vm_runner", RUN_TIMEOUT_S)
    results: dict[str, tuple[str, str]] = {}
    for line in finished.stdout.splitlines():
        match = RESULT_LINE.match(line)
        if match:
            results[match.group(2)] = (match.group(1), match.group(3) or "")
    assert "DONE" in finished.stdout, f"the VM runner did not finish: {finished.stdout[-2000:]}{finished.stderr[-2000:]}"
    return results


def test_the_vm_ran_every_core_test(vm_results: dict[str, tuple[str, str]]) -> None:
    import_errors = {name: detail for name, (verdict, detail) in vm_results.items() if name not in CORE_TEST_IDS}
    assert not import_errors, f"modules that did not import in the VM: {import_errors}"
    assert sorted(vm_results) == CORE_TEST_IDS


@pytest.mark.parametrize("test_id", CORE_TEST_IDS)
def test_core_test_passes_on_micropython(vm_results: dict[str, tuple[str, str]], test_id: str) -> None:
    verdict, detail = vm_results.get(test_id, ("MISSING", "the VM did not report it"))
    assert verdict == "PASS", f"on MicroPython: {verdict} {detail}"
