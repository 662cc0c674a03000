"""The errors a command ends with, one base per kind of failure, each with its exit status.

SetupError (exit 2): bad input or a missing prerequisite, one line naming what was wrong and what to do.
BoardFailure (exit 1): the board under test failed the runner; reported as `LABEL: message` (hang, timeout,
disconnected, panic, reset, ...).
"""


class SetupError(Exception):
    """Bad input or a missing prerequisite: the message names what was wrong and what to do."""


class BoardFailure(Exception):
    """The board hung, reset, panicked, went away, or its code failed. `label` names the kind of failure."""

    label = "error"

    def report(self) -> str:
        """The summary line, starting with the kind of failure, then any details."""
        return f"{self.label}: {self}"
