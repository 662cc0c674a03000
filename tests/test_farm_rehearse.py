"""The board farm on loopback with real labgrid: a coordinator, an exporter with ser2net, simulated boards.

- `vhil farm rehearse --boards 4 --jobs 8` holds: every job passes, no board saw two sessions at once, nothing
  is left running; and a SIGTERM in the middle leaves nothing running either.
- A board entry naming a place goes through the coordinator; a job killed with SIGKILL leaves its place acquired,
  the next run waits for it naming the holder, and `vhil farm release --stale` frees it.
- A place with a power resource is hard-reset through labgrid's power driver.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from hil.farm.export import FarmExport
from hil.farm.places import Coordinator
from hil.farm.rehearse import Farm, processes_under
from hil.lock import read_holder
from hil.serial.events import REBOOT, RESET, TRACEBACK
from hil.sim.sessions import read_sessions
from hil.targets import resolve_target

pytestmark = [pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning"),  # pyserial's
              pytest.mark.skipif(not Path("/usr/sbin/ser2net").exists() and not __import__("shutil").which("ser2net"),
                                 reason="ser2net not installed (apt-get install ser2net; .ci/run installs it)")]


def _run_env(tmp_path: Path) -> dict[str, str]:
    """The rehearsal's farm goes under tmp_path/tmp, so what it leaves behind is found by path, not by name."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp_path / "tmp"), PYTHONUNBUFFERED="1")


def test_rehearsal_with_4_boards_and_8_jobs_holds_and_leaves_nothing_running(tmp_path: Path) -> None:
    # each job runs the HIL suite's serial tests on the board it reserved (the full workload adds the DUT app and
    # the contract suite: about twice as long)
    run = subprocess.run([sys.executable, "-m", "hil.cli", "farm", "rehearse", "--boards", "4", "--jobs", "8", "--quick",
                          "--job-timeout", "180", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=240, env=_run_env(tmp_path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "rehearsal.json").read_text())
    assert result["ok"] and result["overlaps"] == 0 and result["left_running"] == []
    assert [j["exit_code"] for j in result["job_results"]] == [0] * 8
    assert sum(result["sessions_per_board"].values()) == 8, result["sessions_per_board"]
    assert {j["place"] for j in result["job_results"]} <= set(result["sessions_per_board"])
    assert result["waits"]["reservation_wait_s"]["n"] == 8
    assert (tmp_path / "out" / "rehearsal.png").stat().st_size > 10_000
    junit = [(tmp_path / "out" / "jobs" / f"job-{i}.xml").read_text() for i in range(8)]
    assert all('errors="0"' in x and 'failures="0"' in x and "test_hard_reset_recovery" in x for x in junit)
    assert "rehearse: 4 boards, 8 jobs:" in run.stderr, "a progress line while it runs"
    assert processes_under(tmp_path / "tmp") == []


def test_sigterm_during_a_rehearsal_leaves_nothing_running(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "hil.cli", "farm", "rehearse", "--boards", "2", "--jobs", "4",
                                "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_run_env(tmp_path))
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:  # wait until the jobs hold boards
        if "running" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=90)
    assert process.returncode == 130
    assert processes_under(tmp_path / "tmp") == []
    assert list((tmp_path / "tmp").iterdir()) == [], "the farm's working directory is removed"


@pytest.fixture
def farm() -> Iterator[Farm]:
    work = Path(tempfile.mkdtemp(prefix="vhil-farm-test-"))
    loopback = Farm(work, 1, "stale")
    try:
        loopback.start(lambda text: None)
        yield loopback
    finally:
        loopback.stop()


def test_a_killed_job_leaves_its_place_acquired_until_release_stale(tmp_path: Path, farm: Farm) -> None:
    (_, pattern, _), = farm.places
    # the place a user creates with the commands `vhil farm export` writes (real labgrid-client)
    bench = FarmExport({}, [("bench-x", pattern, {"chip": "esp32", "bench": "yes"})], [])
    for argv in bench.client_commands(farm.address):
        created = subprocess.run([sys.executable, "-c", "from labgrid.remote.client import main; main()", *argv[1:]],
                                 capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
    inventory = tmp_path / "boards.toml"
    inventory.write_text('[[board]]\nid = "bench"\nchip = "esp32"\nplace = "bench-x"\nreset = "soft"\n')
    env = dict(os.environ, LG_COORDINATOR=farm.address, VHIL_LOCK_DIR=str(tmp_path / "locks"))

    def vhil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hil.cli", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    job = subprocess.Popen([sys.executable, "-m", "hil.cli", "hil", "exec", "--target", "board:bench", "--boards",
                            str(inventory), "import time\ntime.sleep(60)"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = tmp_path / "locks" / "place-bench-x.lock"
    deadline = time.monotonic() + 30
    while not (record.exists() and (holder := read_holder(record)) and holder.pid == job.pid):
        assert time.monotonic() < deadline and job.poll() is None, "the job never acquired the place"
        time.sleep(0.1)
    job.kill()  # no cleanup: labgrid keeps the place acquired for this host and user
    job.wait(10)

    waiting = vhil("hil", "exec", "--target", "board:bench", "--boards", str(inventory), "--lock-timeout", "1", "print(1)")
    assert waiting.returncode == 2, waiting.stderr
    assert "bench-x held by" in waiting.stderr and f"pid {job.pid}" in waiting.stderr, waiting.stderr

    released = vhil("farm", "release", "--stale")
    assert released.returncode == 0, released.stderr
    assert "released place bench-x" in released.stdout and f"pid {job.pid}" in released.stdout, released.stdout
    client = Coordinator(farm.address)
    try:
        client.sync()
        assert client.places()["bench-x"].acquired is None
    finally:
        client.close()

    again = vhil("hil", "exec", "--target", "board:bench", "--boards", str(inventory), "--lock-timeout", "10",
                 "print(6*7)")
    assert again.returncode == 0 and again.stdout.strip() == "42", again.stderr
    nothing = vhil("farm", "release", "--stale")
    assert "nothing stale" in nothing.stdout
    _, _, sessions = farm.sims["sim-0"]
    assert all(s.overlaps == 0 for s in read_sessions(sessions))


class _SimplerestPdu(http.server.BaseHTTPRequestHandler):
    """A PDU speaking labgrid's `simplerest` power protocol (GET /relay/INDEX/VALUE sets, GET /relay/INDEX reads)
    whose outlet feeds the simulated board: off stops the chip, on powers it up (POWERON reset)."""

    board_pid = 0
    switched: list[str] = []
    state = "1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = self.path.strip("/").split("/")
        if len(parts) == 3:
            value = parts[2]
            type(self).switched.append(value)
            if value == "0":
                os.kill(self.board_pid, signal.SIGSTOP)
            elif type(self).state == "0":
                os.kill(self.board_pid, signal.SIGCONT)
                os.kill(self.board_pid, signal.SIGUSR2)  # the sim's EN pin: boots with POWERON_RESET
            type(self).state = value
        body = type(self).state.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_place_with_a_power_resource_is_reset_through_labgrids_power_driver(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pdu = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SimplerestPdu)
    threading.Thread(target=pdu.serve_forever, daemon=True).start()
    power = {"NetworkPowerPort": {"model": "simplerest", "index": 0,
                                  "host": f"http://127.0.0.1:{pdu.server_address[1]}/relay/{{index}}/{{value}}"}}
    work = Path(tempfile.mkdtemp(prefix="vhil-farm-test-"))
    farm = Farm(work, 1, "power", extra_resources={"sim-0": power})
    try:
        farm.start(lambda text: None)
        _SimplerestPdu.board_pid = farm.sims["sim-0"][0].pid
        matched = subprocess.run([sys.executable, "-c", "from labgrid.remote.client import main; main()", "-x",
                                  farm.address, "-p", "sim-0", "add-match", f"{farm.places[0][1].rsplit('/', 1)[0]}/NetworkPowerPort"],
                                 capture_output=True, text=True, timeout=60)
        assert matched.returncode == 0, matched.stderr
        inventory = tmp_path / "boards.toml"
        # reset = "none": a hard reset can only come from the place's power resource
        inventory.write_text('[[board]]\nid = "powered"\nchip = "esp32"\nplace = "sim-0"\nreset = "none"\n')
        monkeypatch.setenv("LG_COORDINATOR", farm.address)
        monkeypatch.setenv("VHIL_LOCK_DIR", str(tmp_path / "locks"))
        target = resolve_target("board:powered", inventory)
        target.start_app = False
        with target:
            assert target.lease is not None and target.lease.power
            since = target.console.event_count()
            with target.console.expecting(RESET, REBOOT, TRACEBACK):
                target.hard_reset()
                target.wait_booted()
            resets = [e for e in target.console.events[since:] if e.kind == RESET]
            assert resets and "POWERON_RESET" in resets[0].summary, target.console.events[since:]
            assert target.session().exec_ok("print(6*7)").strip() == "42"
        assert _SimplerestPdu.switched == ["0", "1"], "labgrid's power driver switched the outlet off, then on"
    finally:
        farm.stop()
        pdu.shutdown()
        shutil.rmtree(work, ignore_errors=True)
