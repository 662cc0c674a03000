"""`vhil report` over real runs: a standalone run is indexed, an Autobahn case broken between two runs is a
regression (named, linked in both runs, and `--fail-on-regression` exits 1), the page stays small with 100 runs,
`--keep` prunes, and the page works in a real browser (headless Chromium through Playwright)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from _servers_conformance import REPO, running
from hil.probe import free_tcp_port
from hil.runinfo import RUN_FILE, summary_problems, write_summary

CHROMIUM = Path("/usr/bin/chromium")
PAGE_LIMIT_BYTES = 400_000  # a CI artifact viewer opens this at once; measured ~100 KB with 100 runs
CASES = ("1.1.1", "3.1")  # 3.1 (RSV bits) fails once the server stops checking reserved bits


def vhil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_a_standalone_run_is_indexed_with_its_metadata(tmp_path: Path) -> None:
    run = vhil("conformance", "--target", "host", "--cases", "1.1.1", cwd=tmp_path)  # no --out: reports/<run-id>/...
    assert run.returncode == 0, run.stdout + run.stderr
    report = vhil("report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0] == str(Path("reports") / "index.html")
    (run_dir,) = (tmp_path / "reports").glob("2*")
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert [r["run_id"] for r in index["runs"]] == [run_dir.name]
    group = index["groups"][0]
    assert (group["key"], group["status"], group["latest_run"]) == ("host / conformance", "pass", run_dir.name)
    assert group["counts"] == {"OK": 1} and group["page"] == f"{run_dir.name}/host/conformance/autobahn/index.html"
    assert run_dir.name in (tmp_path / "reports" / "index.html").read_text()
    meta = json.loads((run_dir / "host" / "conformance" / RUN_FILE).read_text())
    assert meta["run_id"] == run_dir.name and meta["suite"] == "conformance" and meta["target"] == "host"
    assert meta["firmware"] == {"impl": "ViperHTTP-reference", "version": "0.1.0", "platform": "linux"}  # its /health
    assert meta["exit_status"] == 0 and meta["started"] <= meta["finished"] and meta["host"]
    assert meta["commit"]  # the project's checkout
    assert summary_problems(json.loads((run_dir / "host" / "conformance" / "summary.json").read_text())) == []


def test_a_hil_suite_run_brings_its_numbers_to_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "20260101T000000Z-hil" / "sim" / "hil"  # as a matrix cell's folder
    run = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "hil" / "tests"), "--target", "sim", "-q",
                          "-p", "no:cacheprovider", "-k", "boot_to_ready or repl_responsiveness", f"--report-dir={folder}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert summary_problems(json.loads((folder / "summary.json").read_text())) == []
    assert json.loads((folder / RUN_FILE).read_text())["firmware"]["impl"] == "ViperHTTP-reference"  # the sim's /health
    assert vhil("report", cwd=tmp_path).returncode == 0
    (group,) = json.loads((tmp_path / "reports" / "index.json").read_text())["groups"]
    assert (group["key"], group["status"], group["counts"]) == ("sim / hil", "pass", {"passed": 2})
    assert group["numbers"]["boot_to_ready_s"] > 0 and group["numbers"]["exec_median_ms"] > 0  # its record_property
    assert group["page"] == "20260101T000000Z-hil/sim/hil/hil.html"
    page = (folder / "hil.html").read_text()
    for case in json.loads((folder / "summary.json").read_text())["cases"]:
        assert f'id="{case["report"].split("#")[1]}"' in page  # each case links to its own row


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reports/ with two conformance runs against one url: target (3.1 breaks in the second) and a contract run."""
    work = tmp_path_factory.mktemp("two-runs")
    port = free_tcp_port()
    target = f"url:ws://127.0.0.1:{port}"
    for server_args, expected in ((("raw",), 0), (("raw", "--ignore-rsv"), 1)):
        with running(*server_args, "--port", str(port)):
            run = vhil("conformance", "--target", target, "--cases", *CASES, "--no-baseline", cwd=work)
        assert run.returncode == expected, run.stdout + run.stderr
        if expected == 0:
            first = vhil("report", "--fail-on-regression", cwd=work)
            assert first.returncode == 0, first.stdout + first.stderr  # one run: nothing to regress from
        time.sleep(1.1)  # run ids are per second
    contract = vhil("contract", "--target", "host", "--", "-k", "echo", cwd=work)
    assert contract.returncode == 0, contract.stdout + contract.stderr
    return work


def test_a_case_broken_between_two_runs_is_a_regression(two_runs: Path) -> None:
    plain = vhil("report", cwd=two_runs)
    assert plain.returncode == 0, plain.stderr
    gate = vhil("report", "--fail-on-regression", cwd=two_runs)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "case 3.1: OK -> FAILED" in gate.stdout
    root = two_runs / "reports"
    index = json.loads((root / "index.json").read_text())
    (group,) = [g for g in index["groups"] if g["suite"] == "conformance"]
    assert [r["what"] for r in index["regressions"]] == ["status: pass -> fail", "case 3.1: OK -> FAILED"]
    (case,) = group["cases"]  # 1.1.1 passed both times: only the case that changed is listed
    assert case["id"] == "3.1" and {"regressed", "newly failing"} <= set(case["kinds"])
    assert case["outcomes"] == ["OK", "FAILED"]
    first_run, second_run = group["case_runs"]
    assert case["links"][0].startswith(first_run) and case["links"][1].startswith(second_run)
    for link in case["links"]:
        page = root / link
        assert page.is_file() and page.suffix == ".html" and "3_1" in page.name  # the case's own Autobahn page
    assert group["numbers"]["failed_cases"] == 1 and group["plot"] and (root / group["plot"]).is_file()


def _synthetic_runs(root: Path, runs: int) -> None:
    """`runs` runs of three cells as the suites write them (517 Autobahn cases; a few flip now and then)."""
    case_ids = [f"{s}.{i}.{j}" for s in range(1, 14) for i in range(1, 9) for j in range(1, 6)][:517]
    for number in range(runs):
        run_id = f"2026{1 + number // 28:02d}{1 + number % 28:02d}T120000Z-{number:04x}"
        for target, suite in (("host", "conformance"), ("sim", "contract"), ("host", "load")):
            folder = root / run_id / target / suite
            folder.mkdir(parents=True)
            if suite == "conformance":
                outcomes = {c: "FAILED" if (c == "6.4.3" and number % 7 == 3) or (c == "9.1.1" and number > 90) else "OK"
                            for c in case_ids}
                cases = [{"id": c, "outcome": o, "report": f"autobahn/case_{c}.html"} for c, o in outcomes.items()]
                numbers = {"wall_time_s": 40 + number % 5, "failed_cases": sum(o == "FAILED" for o in outcomes.values())}
            elif suite == "contract":
                cases = [{"id": f"test_{i}", "outcome": "failed" if i == 3 and number == runs - 1 else "passed",
                          "report": f"contract.html#case-test_{i}"} for i in range(25)]
                numbers = {"wall_time_s": 3.0, "boot_to_ready_s": 1.0 + number / 100}
            else:
                cases = [{"id": "p95", "outcome": "passed", "report": "report.html"}]
                numbers = {"p95_ms": 5 + number % 3 + (20 if number == runs - 1 else 0), "delivered_per_s": 20000 - number}
            write_summary(folder, suite=suite, target={"name": target}, status="complete", holds=True,
                          counts={"passed": len(cases)}, numbers=numbers, cases=cases)
            (folder / RUN_FILE).write_text(json.dumps({"run_id": run_id, "suite": suite, "target": target,
                                                       "exit_status": 0, "started": run_id, "commit": "abc"}))


def test_page_stays_small_with_100_runs_and_keep_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reports"
    _synthetic_runs(root, 100)
    report = vhil("report", "--reports", str(root), "--fail-on-regression", cwd=tmp_path)
    assert report.returncode == 1  # the last run's p95 jumped 20 ms and a contract test failed
    assert "host / load: p95_ms" in report.stdout and "sim / contract: case test_3: passed -> failed" in report.stdout
    index = json.loads((root / "index.json").read_text())
    assert len(index["runs"]) == 100
    conformance = next(g for g in index["groups"] if g["key"] == "host / conformance")
    assert {c["id"] for c in conformance["cases"]} == {"6.4.3", "9.1.1"}  # 517 cases, only the changed ones kept
    assert "flaky" in next(c for c in conformance["cases"] if c["id"] == "6.4.3")["kinds"]
    page, data = (root / "index.html").stat().st_size, (root / "index.json").stat().st_size
    with capsys.disabled():  # in the test's output, not only on failure
        print(f"\nindex with 100 runs: index.html {page} bytes, index.json {data} bytes")
    assert page < PAGE_LIMIT_BYTES and data < 2 * PAGE_LIMIT_BYTES

    pruned = vhil("report", "--reports", str(root), "--keep", "30", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert len([p for p in root.iterdir() if p.is_dir() and p.name.startswith("2026")]) == 30
    assert len(json.loads((root / "index.json").read_text())["runs"]) == 30
    bad = vhil("report", "--reports", str(root), "--keep", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--keep 0" in bad.stderr


def _local_file(base: str, href: str) -> Path:
    return Path(unquote(urlsplit(href if "://" in href else base.rsplit("/", 1)[0] + "/" + href).path))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_index_renders_and_every_link_resolves_in_chromium(two_runs: Path, tmp_path_factory: pytest.TempPathFactory,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import sync_playwright

    root = two_runs / "reports"
    assert vhil("report", cwd=two_runs).returncode == 0
    screenshot = tmp_path_factory.getbasetemp() / "report-browser" / "index.png"
    screenshot.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((root / "index.html").as_uri())
            assert page.locator("#matrix td.cell").count() == 2  # url target / conformance, host / contract
            assert page.locator("#regressions li", has_text="case 3.1: OK -> FAILED").is_visible()
            assert page.locator('tr.case[data-case="3.1"] .kind.regressed').is_visible()
            plots = page.locator(".plots img")
            assert plots.count() == 1
            assert page.evaluate("[...document.images].every(img => img.complete && img.naturalWidth > 300)")
            page.screenshot(path=str(screenshot), full_page=True)
            with capsys.disabled():  # in the test's output (CI log), not only on failure
                print(f"\nscreenshot of the index: {screenshot}")
            base = page.url
            hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
            assert len(hrefs) > 10
            missing = [href for href in hrefs if not _local_file(base, href).is_file()]
            assert missing == []

            page.locator('tr.case[data-case="3.1"] a[title="latest run"]').click()  # the case's Autobahn page
            page.wait_for_load_state()
            assert "3.1" in page.content() and "FAILED" in page.content()
            page.go_back()
            page.locator('#matrix td[data-key="host / contract"] a', has_text="report").first.click()  # its own page
            page.wait_for_load_state()
            assert page.url.endswith("contract.html") and page.locator("tr[id^=case-]").count() >= 3
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def test_load_latency_plots_are_scaled_to_their_data() -> None:
    from loadtest.report import latency_axis_top

    assert latency_axis_top([2.0, 5.0, 8.0], limit=500) == (pytest.approx(9.2), False)  # not 0..500 with flat lines
    assert latency_axis_top([200.0, 400.0, None], limit=450) == (pytest.approx(472.5), True)  # near: drawn
    assert latency_axis_top([None], limit=500) == (pytest.approx(1.15), False)


def test_an_empty_reports_root_is_a_setup_error(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "not-a-run").mkdir()
    (tmp_path / "reports" / "not-a-run" / "notes.txt").write_text("a folder a person put here")
    result = vhil("report", "--keep", "1", cwd=tmp_path)
    assert result.returncode == 2 and "no runs under reports" in result.stderr
    assert (tmp_path / "reports" / "not-a-run").exists()  # only run folders are ever touched
