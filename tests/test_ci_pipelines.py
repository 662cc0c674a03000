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
