"""The board-farm pipeline definitions stay in step with the CLI: every `vhil` line they run parses."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from hil.cli import build_parser

CI = Path(__file__).resolve().parent.parent / "ci"
PIPELINES = [CI / "board-farm.gitlab-ci.yml", CI / "github" / "board-farm.yml"]


def vhil_lines(node: object) -> list[str]:
    if isinstance(node, str):
        return [line.strip() for line in node.splitlines() if line.strip().startswith("vhil ")]
    if isinstance(node, dict):
        return [line for value in node.values() for line in vhil_lines(value)]
    if isinstance(node, list):
        return [line for value in node for line in vhil_lines(value)]
    return []


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_vhil_command_in_the_pipeline_parses(path: Path) -> None:
    lines = vhil_lines(yaml.safe_load(path.read_text()))
    assert len(lines) >= 3, "the pipeline runs flash, the matrix and more"
    parser = build_parser()
    for line in lines:
        for variable in ("${{ matrix.board }}", "$BOARD"):
            line = line.replace(variable, "esp32-devkit")
        words = shlex.split(line.replace("$VHIL_BOARDS", "boards.toml"))[1:]
        try:
            parser.parse_args(words)
        except SystemExit as exc:
            pytest.fail(f"{path.name}: `{line}` does not parse (exit {exc.code})")


EXAMPLE_INVENTORY = CI.parent / "boards.example.toml"


def _words(line: str, run: dict[str, str] | None = None) -> list[str]:
    """One shell command's words, up to a redirection or pipe, with the job's variables substituted."""
    for variable, value in (("${{ matrix.board }}", "$BOARD"), ("${{ matrix.tags }}", "$FARM_TAGS")):
        line = line.replace(variable, value)
    for variable, value in (run or {}).items():
        line = line.replace(f"${variable}", value)
    words = shlex.split(line)
    cut = next((i for i, w in enumerate(words) if w in (">", ">>", "|")), len(words))
    return words[:cut]


def _jobs(path: Path) -> dict[str, dict]:
    """The jobs as they run: GitLab templates (.name) merged into the jobs that extend them, and left out."""
    data = yaml.safe_load(path.read_text())
    jobs = {name: job for name, job in data.get("jobs", data).items() if isinstance(job, dict)}
    resolved = {}
    for name, job in jobs.items():
        if name.startswith("."):
            continue
        template = jobs.get(job.get("extends", ""), {})
        resolved[name] = {**template, **job, "variables": {**(template.get("variables") or {}), **(job.get("variables") or {})}}
    return resolved


def _job_boards(job: dict) -> list[dict[str, str]]:
    """The BOARD/FARM_TAGS each run of a job gets (GitLab variables, GitHub matrix include, or the literal id)."""
    variables = dict(job.get("variables") or {})
    include = (job.get("strategy") or {}).get("matrix", {}).get("include") or [{}]
    runs = []
    for extra in include:
        run = dict(variables)
        if "board" in extra:
            run.update(BOARD=extra["board"], FARM_TAGS=extra.get("tags", ""))
        runs.append(run)
    return runs


def _job_lines(job: dict) -> list[str]:
    steps = job.get("steps") or []
    scripts = [job.get("script") or [], job.get("after_script") or [], [s.get("run", "") for s in steps]]
    return [line.strip() for script in scripts for item in script for line in str(item).splitlines() if line.strip()]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_boards_and_reservations_match_the_example_inventory(path: Path) -> None:
    from hil.inventory import load_inventory

    inventory = load_inventory(EXAMPLE_INVENTORY)
    farm_jobs = 0
    for name, job in _jobs(path).items():
        lines = _job_lines(job)
        for run in _job_boards(job):
            for line in lines:
                for word in _words(line, run):
                    if word.startswith("board:") and word != "board:*":
                        inventory.board(word.split(":", 1)[1].strip('"'))  # SetupError when the id is not there
                if line.startswith("labgrid-client reserve"):
                    farm_jobs += 1
                    filters = dict(w.split("=", 1) for w in _words(line, run) if "=" in w and not w.startswith("-"))
                    board = inventory.board(run["BOARD"])
                    assert board.tags, f"{path.name} {name}: reserves by tags for {board.id}, which has no tags"
                    assert filters == dict(board.tags), \
                        f"{path.name} {name}: reserves {filters}, the inventory's {board.id} asks for {dict(board.tags)}"
    assert farm_jobs >= 1, "farm jobs reserve their board through labgrid"


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_tox_environments_and_labgrid_commands_exist(path: Path) -> None:
    import configparser

    from labgrid.remote.client import get_parser as labgrid_parser

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(CI.parent / "tox.ini")
    environments = {section.split(":", 1)[1] for section in tox.sections() if section.startswith("testenv:")}
    seen = set()
    for line in (line for job in _jobs(path).values() for line in _job_lines(job)):
        for command in line.split(";"):
            words = _words(command.strip())
            if words[:2] == ["tox", "-e"]:
                assert words[2] in environments, f"{path.name}: tox -e {words[2]} is not in tox.ini"
                seen.add("tox")
            if words[:1] == ["labgrid-client"]:
                try:
                    labgrid_parser().parse_args(_words(command.strip(), {"FARM_TAGS": "chip=esp32s3"})[1:])
                except SystemExit as exc:
                    pytest.fail(f"{path.name}: `{command.strip()}` is not a labgrid-client command (exit {exc.code})")
                seen.add("labgrid")
    assert seen == {"tox", "labgrid"}
