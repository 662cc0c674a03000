"""`vhil farm rehearse`: a whole labgrid farm on loopback, K simulated boards, J concurrent jobs.

It starts a real labgrid coordinator and exporter on 127.0.0.1, K simulated ESP32s (`python -m hil.sim`, one
process and one pty each, each recording its sessions: hil/sim/sessions.py), exports them (one exporter per 8
boards, as a farm host with a USB hub would) with every pty a place tagged
`chip=esp32 rehearsal_<run>=yes`, and runs J jobs at once. Each job is a separate pytest process whose
inventory names no board, only the tags: it reserves a matching place through the coordinator, runs the fixed
workload over the place's RFC 2217 port, and releases it. Then it stops everything it started (coordinator,
exporter with its ser2net children, simulators), checks none of it is left, and judges:

- every job passed;
- no board saw two sessions at once (the boards' own records; a lock or a scheduler bug shows up here);
- nothing is left running.

Workloads (fixed, so runs compare), each one pytest session holding one reservation: `full` is the HIL suite
(hil/tests, soak 2 s, 200 leak messages) and the contract suite (conformance/contract), the DUT app deployed and
served on the simulator's loopback (`app_host`); `quick` is the HIL suite's serial tests alone (deploy and verify a
file, REPL round trips, soft and hard reset recovery; no DUT app). CI (`tests/test_farm_rehearse.py`) runs K=4, J=8
with `quick`. Results: rehearsal.json and rehearsal.png.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hil.artifacts import atomic_write_json, new_run_id
from hil.errors import SetupError
from hil.farm.export import FarmExport, export_boards, tag_key
from hil.farm.places import COORDINATOR_ENV, Coordinator
from hil.inventory import Board, Inventory
from hil.lock import LEASE_LOG_ENV, LOCK_DIR_ENV, LOCK_TIMEOUT_ENV
from hil.sim.sessions import read_sessions
from hil.probe import free_tcp_port, wait_reachable
from hil.process import ManagedProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORTER_NAME = "rehearsal"
BOARDS_PER_EXPORTER = 8  # a farm host's worth (a USB hub); each exporter starts and stops ser2net one place at a time
START_TIMEOUT_S = 30.0
WORKLOADS = ("quick", "full")
SOAK_S, LEAK_MESSAGES = 2, 200  # the HIL suite's network tests, kept short: the workload is fixed, not a soak
PROGRESS_EVERY_S = 1.0
JOB_STOP_GRACE_S = 15.0  # a stopped job's time to release its place before SIGKILL
_LG_MAIN = "import sys; from labgrid.remote.{} import main; sys.exit(main())"


@dataclass
class JobResult:
    index: int
    pid: int
    exit_code: int | None
    seconds: float
    log: str
    place: str | None = None
    reservation_wait_s: float | None = None
    lock_wait_s: float | None = None


@dataclass
class Rehearsal:
    boards: int
    jobs: int
    workload: str
    wall_s: float = 0.0
    job_results: list[JobResult] = field(default_factory=list)
    sessions_per_board: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0
    left_running: list[str] = field(default_factory=list)
    waits: dict[str, dict[str, float]] = field(default_factory=dict)
    interrupted: bool = False
    out_dir: str = ""
    # what limits a run: the CPU seconds of everything it started (jobs, boards, labgrid) per second of wall time,
    # against the machine's cores, and the load average when the jobs ended
    cpu_s: float = 0.0
    exporters: int = 0  # labgrid exporters, one per BOARDS_PER_EXPORTER boards
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    load_avg_1m: float = 0.0
    board_busy_fraction: float = 0.0  # the boards' session time over boards x wall time: near 1, boards were the limit

    @property
    def failed_jobs(self) -> list[JobResult]:
        return [j for j in self.job_results if j.exit_code != 0]

    @property
    def ok(self) -> bool:
        return (not self.interrupted and len(self.job_results) == self.jobs and not self.failed_jobs
                and self.overlaps == 0 and not self.left_running)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ok=self.ok, failed_jobs=[j.index for j in self.failed_jobs])
        return data


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0, "n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered))) - 1))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3), "max": round(ordered[-1], 3),
            "n": len(ordered)}


class Farm:
    """The loopback farm: coordinator, simulated boards, exporter, places. `stop` ends all of it (idempotent)."""

    def __init__(self, work: Path, boards: int, run_tag: str,
                 extra_resources: dict[str, dict[str, object]] | None = None) -> None:
        self.work = work
        self.extra_resources = extra_resources or {}  # board group -> more resources to export with its port
        self.boards = boards
        self.run_tag = run_tag
        self.address = f"127.0.0.1:{free_tcp_port()}"
        self.processes: list[ManagedProcess] = []
        self.sims: dict[str, tuple[ManagedProcess, str, Path]] = {}  # place -> (process, pty, session record)
        self.exports: dict[str, FarmExport] = {}  # exporter name -> its config and places
        self.job_tags: dict[str, str] = {}  # what a job reserves by: the chip and this rehearsal's label

    def _start(self, argv: list[str], log: str, **kwargs: Any) -> ManagedProcess:
        process = ManagedProcess(argv, log_path=self.work / "logs" / log, die_with_parent=True, **kwargs)
        self.processes.append(process)
        return process

    def start(self, progress: Callable[[str], None]) -> None:
        progress("starting the labgrid coordinator")
        # the coordinator keeps its state (places.yaml) in its working directory: a fresh one per rehearsal
        (self.work / "coordinator").mkdir()
        coordinator = self._start([sys.executable, "-c", _LG_MAIN.format("coordinator"), "-l", self.address],
                                  "coordinator.log", cwd=str(self.work / "coordinator"), stop_signal=signal.SIGTERM)
        for index in range(self.boards):
            progress(f"starting simulated board {index + 1}/{self.boards}")
            name = f"sim-{index}"
            record = self.work / "sessions" / f"{name}.jsonl"
            process = self._start([sys.executable, "-m", "hil.sim", "--fs", str(self.work / "fs" / name),
                                   "--sessions", str(record)], f"{name}.log", stop_signal=signal.SIGTERM,
                                  env=dict(os.environ, VHIL_SIM_FAULTS=""))
            try:
                pty = process.wait_for_line(r"^pty (\S+)", START_TIMEOUT_S).group(1)
            except (TimeoutError, ProcessLookupError) as exc:
                raise SetupError(f"rehearsal: simulated board {name} did not start ({exc})") from None
            self.sims[name] = (process, pty, record)
        self._wait_listening(coordinator)
        # the boards as inventories would list them, one per exporter host, exported as `vhil farm export` does it
        label = f"rehearsal-{self.run_tag}"
        self.job_tags = {"chip": "esp32", tag_key(label): "yes"}
        names = list(self.sims)
        for first in range(0, len(names), BOARDS_PER_EXPORTER):
            exporter = f"{EXPORTER_NAME}-{first // BOARDS_PER_EXPORTER}"
            inventory = Inventory(self.work / f"{exporter}.toml", tuple(
                Board(id=name, chip="esp32", port=self.sims[name][1], reset="soft", labels=(label,))
                for name in names[first:first + BOARDS_PER_EXPORTER]))
            self.exports[exporter] = export_boards(inventory, exporter)
        for group, resources in self.extra_resources.items():
            next(e for e in self.exports.values() if group in e.exporter).exporter[group].update(resources)
        # ser2net (started by the exporter per acquired place) dies with the exporter even if that is SIGKILLed
        shim = self.work / "bin" / "ser2net"
        shim.parent.mkdir()
        shim.write_text(f"#!/bin/sh\nexec setpriv --pdeathsig KILL {shutil.which('ser2net') or '/usr/sbin/ser2net'} \"$@\"\n")
        shim.chmod(0o755)
        env = dict(os.environ, PATH=f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}")
        for exporter, export in self.exports.items():
            progress(f"starting labgrid exporter {exporter}")
            config = self.work / f"{exporter}.yaml"
            config.write_text(export.exporter_yaml())
            self._start([sys.executable, "-c", _LG_MAIN.format("exporter"), "-c", self.address, "-n", exporter,
                         "--hostname", "127.0.0.1", str(config)], f"{exporter}.log", env=env,
                        stop_signal=signal.SIGTERM, cwd=str(self.work))
        progress(f"creating {self.boards} places")
        self._create_places()

    @property
    def places(self) -> list[tuple[str, str, dict[str, str]]]:
        return [place for export in self.exports.values() for place in export.places]

    def _wait_listening(self, coordinator: ManagedProcess) -> None:
        try:
            wait_reachable(f"http://{self.address}", START_TIMEOUT_S)
        except SetupError:
            raise SetupError(f"rehearsal: the labgrid coordinator did not listen on {self.address}: "
                             f"{coordinator.output()[-300:]}") from None

    def _create_places(self) -> None:
        client = Coordinator(self.address)
        pb = client.pb
        try:
            for name, pattern, tags in self.places:
                client.rpc("AddPlace", pb.AddPlaceRequest(name=name))
                client.rpc("SetPlaceTags", pb.SetPlaceTagsRequest(placename=name, tags=tags))
                client.rpc("AddPlaceMatch", pb.AddPlaceMatchRequest(placename=name, pattern=pattern))
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:  # jobs must find every board exported, not race the exporter's first report
                client.sync()
                if all(client.resource(pattern.split("/")[:2] + ["", "RawSerialPort"]) is not None
                       and client.resource(pattern.split("/")[:2] + ["", "RawSerialPort"]).avail
                       for _, pattern, _ in self.places):
                    return
                if time.monotonic() > deadline:
                    raise SetupError(f"rehearsal: the exporter did not report all {self.boards} boards within "
                                     f"{START_TIMEOUT_S:g} s (see the exporter logs in {self.work / 'logs'})")
                time.sleep(0.2)
        finally:
            client.close()

    def stop(self) -> None:
        for process in reversed(self.processes):  # exporter (and its ser2net) first, then boards, coordinator
            process.stop(grace=5.0)

    def left_running(self, grace: float = 5.0) -> list[str]:
        """Processes of this farm still alive after `grace` s: each one started, every member of its process group."""
        deadline = time.monotonic() + grace
        while True:
            left = self._alive()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)  # a group's other members (a board's session recorder) end just after its leader

    def _alive(self) -> list[str]:
        left = []
        for process in self.processes:
            try:
                os.killpg(process.pid, 0)
                left.append(f"process group {process.pid} ({' '.join(process.argv[:3])})")
            except ProcessLookupError:
                pass
            except PermissionError:
                left.append(f"process group {process.pid} (not ours any more)")
        return sorted(set(left + processes_under(self.work)))


def processes_under(root: Path) -> list[str]:
    """Processes whose command line names `root` or whose working directory is in it (ser2net runs in the
    exporter's, the coordinator in its state directory): what a farm in `root` could have left behind."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if args and (str(root) in args or cwd == str(root) or cwd.startswith(f"{root}/")):
            found.append(f"{entry.name} {args.strip()[:200]}")
    return found


def job_argv(workload: str, inventory: Path, out: Path) -> list[str]:
    """One job: a pytest session (one reservation) of the HIL suite, plus the contract suite for `full`."""
    suites = [str(REPO_ROOT / "hil" / "tests")]
    if workload == "full":
        suites.append(str(REPO_ROOT / "conformance" / "contract"))
    return [sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider", "--target", "board:farm",
            "--boards", str(inventory), "--junitxml", str(out), "-o", "junit_family=xunit1",
            "--soak-seconds", str(SOAK_S), "--leak-messages", str(LEAK_MESSAGES)]


def run_rehearsal(boards: int, jobs: int, workload: str, out_dir: Path, job_timeout: float,
                  progress: Callable[[str], None]) -> Rehearsal:
    if boards < 1 or jobs < 1:
        raise SetupError("--boards and --jobs must be at least 1")
    if workload not in WORKLOADS:
        raise SetupError(f"unknown workload {workload!r}: use {' or '.join(WORKLOADS)}")
    for tool in ("ser2net", "setpriv"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SetupError(f"{tool} not found: install it (apt-get install {'ser2net' if tool == 'ser2net' else 'util-linux'})")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = Rehearsal(boards, jobs, workload, out_dir=str(out_dir))
    work = Path(tempfile.mkdtemp(prefix="vhil-farm-"))
    run_tag = new_run_id().lower().replace("-", "_")
    farm = Farm(work, boards, run_tag)
    running: dict[int, tuple[ManagedProcess, float, Path]] = {}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        farm.start(progress)
        result.exporters = len(farm.exports)
        inventory = work / "boards.toml"
        # the job's view of the farm: no board, only what it needs
        tags = ", ".join(f'{k} = "{v}"' for k, v in farm.job_tags.items())
        # full: the DUT app listens on the board's (the simulator's) loopback, so the network tests and the contract
        # suite run too; quick: serial only, the HIL suite's network tests skip
        app_host = 'app_host = "127.0.0.1"\n' if workload == "full" else ""
        inventory.write_text(f'[[board]]\nid = "farm"\nchip = "esp32"\nreset = "soft"\ntags = {{{tags}}}\n{app_host}')
        env = dict(os.environ, **{COORDINATOR_ENV: farm.address, LEASE_LOG_ENV: str(work / "leases.jsonl"),
                                  LOCK_DIR_ENV: str(work / "locks"), LOCK_TIMEOUT_ENV: f"{job_timeout:g}",
                                  # a job's pytest temporary folders go with the farm, also when a job is killed
                                  "TMPDIR": str(work / "tmp"), "PYTHONUNBUFFERED": "1"})
        (work / "locks").mkdir()
        (work / "tmp").mkdir()
        (out_dir / "jobs").mkdir(exist_ok=True)
        jobs_started = time.monotonic()
        for index in range(jobs):
            log = out_dir / "jobs" / f"job-{index}.log"
            # SIGINT stops a job the way Ctrl-C would: it releases its place; it dies with us if we are killed
            process = ManagedProcess(job_argv(workload, inventory, out_dir / "jobs" / f"job-{index}.xml"), log_path=log,
                                     env=env, cwd=str(REPO_ROOT), stop_signal=signal.SIGINT, die_with_parent=True)
            running[index] = (process, time.monotonic(), log)
        last_progress = 0.0
        while running:
            for index, (process, job_started, log) in list(running.items()):
                code = process.proc.poll()
                if code is None and time.monotonic() - job_started > job_timeout:
                    process.stop(grace=JOB_STOP_GRACE_S)
                    code = None
                elif code is None:
                    continue
                del running[index]
                process.stop(grace=JOB_STOP_GRACE_S)  # exited: reaps what its group left, closes its log
                result.job_results.append(JobResult(index, process.pid, code, round(time.monotonic() - job_started, 3),
                                                    str(log)))
            if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                done = len(result.job_results)
                progress(f"{boards} boards, {jobs} jobs: {len(running)} running, {done} done, "
                         f"{len(result.failed_jobs)} failed, {time.monotonic() - jobs_started:.0f} s")
                last_progress = time.monotonic()
            time.sleep(0.1)
        result.wall_s = round(time.monotonic() - jobs_started, 3)
        result.load_avg_1m = round(os.getloadavg()[0], 2)
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        for process, _, _ in running.values():
            process.stop(grace=JOB_STOP_GRACE_S)
        farm.stop()
        result.left_running = farm.left_running()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.cpu_s = round(children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime, 1)
        _judge(result, farm, work)
        result.job_results.sort(key=lambda j: j.index)
        atomic_write_json(out_dir / "rehearsal.json", result.as_dict())
        _copy_records(work, out_dir)
        shutil.rmtree(work, ignore_errors=True)
        if not result.interrupted:
            plot(result, out_dir / "rehearsal.png")
    return result


def _judge(result: Rehearsal, farm: Farm, work: Path) -> None:
    busy = 0.0
    for name, (_, _, record) in farm.sims.items():
        sessions = read_sessions(record)
        result.sessions_per_board[name] = len(sessions)
        result.overlaps += sum(s.overlaps for s in sessions)
        busy += sum(s.end - s.start for s in sessions if s.end is not None)
    if result.wall_s:
        result.board_busy_fraction = round(busy / (result.boards * result.wall_s), 3)
    leases = []
    try:
        leases = [json.loads(line) for line in (work / "leases.jsonl").read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        pass
    by_pid = {lease["pid"]: lease for lease in leases}
    for job in result.job_results:
        lease = by_pid.get(job.pid)
        if lease is not None:
            job.place, job.reservation_wait_s, job.lock_wait_s = lease["place"], lease["reservation_wait_s"], lease["lock_wait_s"]
    result.waits = {"reservation_wait_s": percentiles([x["reservation_wait_s"] for x in leases]),
                    "lock_wait_s": percentiles([x["lock_wait_s"] for x in leases]),
                    "place_acquire_s": percentiles([x["place_acquire_s"] for x in leases]),
                    "job_s": percentiles([j.seconds for j in result.job_results])}
    result.waits["leases"] = {"n": len(leases)}


def _copy_records(work: Path, out_dir: Path) -> None:
    for source in [*sorted((work / "sessions").glob("*.jsonl")), work / "leases.jsonl"]:
        if source.exists():
            target = out_dir / ("sessions" if source.parent.name == "sessions" else ".") / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    if (work / "logs").is_dir():
        shutil.copytree(work / "logs", out_dir / "logs", dirs_exist_ok=True)


def plot(result: Rehearsal, path: Path) -> None:
    """Sessions per board as a timeline (overlaps in red) and the reservation waits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(result.out_dir)
    fig, (timeline, waits) = plt.subplots(1, 2, figsize=(13, max(3.0, 0.25 * result.boards + 2)),
                                          gridspec_kw={"width_ratios": [3, 1]})
    origin = None
    rows = sorted(result.sessions_per_board, key=lambda n: int(n.split("-")[1]))
    for name in rows:
        for session in read_sessions(out / "sessions" / f"{name}.jsonl"):
            origin = session.start if origin is None else min(origin, session.start)
    for row, name in enumerate(rows):
        for session in read_sessions(out / "sessions" / f"{name}.jsonl"):
            end = session.end if session.end is not None else session.start
            timeline.barh(row, end - session.start, left=session.start - (origin or 0), height=0.7,
                          color="#d43c3c" if session.overlaps else "#2e7dd1")
    timeline.set_yticks(range(len(rows)), rows, fontsize=7)
    timeline.set_xlabel("seconds")
    timeline.set_title(f"sessions per board: {result.boards} boards, {result.jobs} jobs ({result.workload}), "
                       f"wall {result.wall_s:.1f} s, overlaps {result.overlaps}")
    leases = []
    lease_log = out / "leases.jsonl"
    if lease_log.exists():
        leases = [json.loads(line) for line in lease_log.read_text().splitlines() if line.strip()]
    waits.hist([x["reservation_wait_s"] for x in leases] or [0], bins=20, color="#2e9e44")
    stats = result.waits.get("reservation_wait_s", {})
    waits.set_title(f"reservation wait: p50 {stats.get('p50', 0)} s, p95 {stats.get('p95', 0)} s", fontsize=9)
    waits.set_xlabel("seconds")
    waits.set_ylabel("jobs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
