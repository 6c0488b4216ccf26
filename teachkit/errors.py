"""The base of teachkit's own errors for the user: `python -m teachkit.train` prints them, without a traceback.

Each is raised with a message that says what went wrong and what to do (a failed download, a diverged run, a
checkpoint that doesn't fit, a cache that can't be written, ranks holding different data), so the CLI catches
`TeachkitError` in one place and prints `error: <message>` with exit status 1. Each error also keeps its usual base
(`ValueError`, `OSError`, ...), so code that catches those still does.
"""
from __future__ import annotations

__all__ = ["TeachkitError", "user_message"]


class TeachkitError(Exception):
    """An error whose message is meant for the user (what went wrong, what to do): the CLI prints it as it is."""


def user_message(e: TeachkitError) -> str:
    """The message to print: an error raised in a DataLoader worker comes back from torch with the worker's traceback
    in front of it (`Caught ... in DataLoader worker process 0. Original Traceback ...`); keep only the message."""
    text, name = str(e), f"{type(e).__module__}.{type(e).__qualname__}: "
    if "\nOriginal Traceback" not in text or name not in text:
        return text
    return text[text.rindex(name) + len(name):].strip()
