"""Errors that end a command with a one-line message and exit status 2."""


class SetupError(Exception):
    """Bad input or a missing prerequisite: the message names what was wrong and what to do."""
