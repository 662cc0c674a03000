"""Sharding matrix cells over boards: `vhil matrix --targets 'board:*' [--labels L]`.

Each cell runs on whichever matching board is free, several cells at once, never two on one board: the pool
holds each board once (a board reserved by tags once per matching labgrid place, since each cell then reserves
a place of its own), a cell takes a board from the pool and gives it back when it ends. Other runs are kept off
the same boards by the board lock or the labgrid reservation the cell's own target takes.
"""
from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Any, Callable, Iterator

from hil.errors import SetupError
from hil.inventory import Inventory



def board_pool(inventory: Inventory, labels: list[str]) -> list[str]:
    """Target names of the boards cells may run on: those carrying every label, tag-reserved ones once per place."""
    chosen = [b for b in inventory.boards if all(label in b.labels for label in labels)]
    if not chosen:
        raise SetupError(f"no board in {inventory.path} has the labels {', '.join(labels)}" if labels
                         else f"no board in {inventory.path}")
    pool = []
    places: dict[str, Any] | None = None
    for board in chosen:
        copies = 1
        if board.tags:
            if places is None:
                from hil.farm.places import Coordinator

                coordinator = Coordinator()
                try:
                    places = coordinator.places()
                finally:
                    coordinator.close()
            from hil.farm.places import matches

            copies = max(1, sum(matches(p.tags, dict(board.tags), name) for name, p in places.items()))
        pool += [f"board:{board.id}"] * copies
    return pool


def run_sharded(cells: list[Any], pool: list[str], run: Callable[[Any], Any], stop: Callable[[], None]) -> Iterator[Any]:
    """Run each cell (`run(cell with target = a board)`) as boards come free; yield results as they end.

    A result's `target` stays the cell's pattern and its `board` names the board that ran it.
    """
    free: "queue.Queue[str]" = queue.Queue()
    for board in pool:
        free.put(board)

    def work(cell: Any) -> Any:
        board = free.get()
        try:
            result = run(replace(cell, target=board))
        finally:
            free.put(board)
        result.target, result.board = cell.target, board
        return result

    with ThreadPoolExecutor(max_workers=len(pool), thread_name_prefix="cell") as executor:
        futures = [executor.submit(work, cell) for cell in cells]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            stop()  # the running cells' processes: SIGINT (they write partial reports), then SIGKILL
            raise
