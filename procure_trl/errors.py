"""User errors: bad input that the user can fix, reported by ``procure`` as one line with exit code 2.

Library code raises :class:`UserError` (a ``ValueError``, so existing ``except ValueError`` callers keep
working) with a message that names the bad input and the fix; :func:`procure_trl.cli.main` prints it
without a traceback unless ``--debug`` is given. :func:`did_you_mean` suggests the closest known name.
A programming error (a bug, a broken internal invariant) is not a ``UserError``: it keeps its own type and shows its
traceback. Every ``error:`` line of ``procure`` is written by :func:`print_error`.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable

__all__ = ["ExistingOutputError", "MissingInputError", "NotPermittedError", "UserError", "did_you_mean",
           "error_line", "first_line", "print_error", "require_folder_path", "short_list"]


class UserError(ValueError):
    """Bad input (a flag, a file, a recipe field): the message names it and says how to fix it."""


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder the user named does not exist (also a ``FileNotFoundError`` for callers that
    catch that)."""


class ExistingOutputError(UserError, FileExistsError):
    """The output the user named exists already and the run may not replace or continue it."""


class NotPermittedError(UserError, PermissionError):
    """The run needs a permission the user has to give (an opt-in variable, a writable place)."""


def error_line(prog: str, message: str) -> str:
    """``"<prog>: error: <message>"`` on one line, whatever line breaks ``message`` quotes."""
    return f"{prog}: error: {' '.join(str(message).split())}"


def print_error(prog: str, message: str) -> None:
    """Write :func:`error_line` to stderr: the one printer of every ``error:`` line of ``procure``."""
    print(error_line(prog, message), file=sys.stderr)


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
