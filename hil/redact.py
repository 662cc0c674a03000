"""Secrets never leave the process: every log, report and console line passes through one redactor.

Wi-Fi passwords are named in the inventory by environment variable; when a value is read from the
environment it is registered here, and every writer (serial log, console events, JUnit attachments, CLI output)
replaces it with `***`. A stream writer asks `split_safe` so a secret split across two serial reads is still caught.
"""
from __future__ import annotations

import os
import threading

MASK = "***"
_MIN_SECRET_LEN = 3  # shorter values would mask ordinary text everywhere; the inventory rejects them

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def secret_from_env(var_name: str) -> str | None:
    """The value of an environment variable, registered as a secret before anyone sees it."""
    value = os.environ.get(var_name)
    if value is not None:
        register_secret(value)
    return value


def _current() -> list[str]:
    with _lock:
        return sorted(_secrets, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def redact(text: str) -> str:
    for secret in _current():
        text = text.replace(secret, MASK)
    return text


def split_safe(text: str) -> tuple[str, str]:
    """(redacted text safe to write now, tail to hold back because it may be the start of a secret)."""
    text = redact(text)
    hold = 0
    for secret in _current():
        for length in range(min(len(secret) - 1, len(text)), hold, -1):
            if text.endswith(secret[:length]):
                hold = length
                break
    return (text[:-hold], text[-hold:]) if hold else (text, "")


def forget_all() -> None:
    """For tests only: start from an empty registry."""
    with _lock:
        _secrets.clear()
