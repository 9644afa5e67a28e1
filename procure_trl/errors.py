"""User errors: bad input that the user can fix, reported by ``procure`` as one line with exit code 2.

Library code raises :class:`UserError` (a ``ValueError``, so existing ``except ValueError`` callers keep
working) with a message that names the bad input and the fix; :func:`procure_trl.cli.main` prints it
without a traceback unless ``--debug`` is given. :func:`did_you_mean` suggests the closest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UserError", "did_you_mean", "first_line", "require_folder_path", "short_list"]


class UserError(ValueError):
    """Bad input (a flag, a file, a recipe field): the message names it and says how to fix it."""


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the known name closest to ``word``, or ``""`` when none is close."""
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type name when the message is empty): libraries' errors can
    run to many lines, and a user error is one."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def short_list(items: Iterable[str], limit: int = 5) -> str:
    """The first ``limit`` of ``items`` joined by commas, and how many there are in all when some are left out:
    a one-line error names a few offenders, not thousands."""
    items = list(items)
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def require_folder_path(path: str, label: str) -> None:
    """Raise a one-line :class:`UserError` when the output folder ``path`` (the option ``label``) names an existing
    file: checked before any work, so a run does not end in a ``FileExistsError`` traceback once it is done."""
    import os

    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{label} {path} is a file, not a folder; give a folder path (it is created when missing)")
