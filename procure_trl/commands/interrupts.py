"""Interrupts (^C, SIGTERM) of a ``procure`` command: one line saying what is kept and how to continue, exit 130.

:func:`sigterm_as_interrupt` makes SIGTERM stop a command the way ^C does (``KeyboardInterrupt``, or the SIGINT
handler in force), so that both reach the same ``except KeyboardInterrupt`` (see
:func:`procure_trl.cli.run_reporting_errors`, which prints the line). A command module may define
``interrupted_hint(args, error) -> str``: what was kept and how to continue.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

#: Exit status of an interrupted command (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the command as ^C does: what was written stays, worker processes are closed, exit 130."""

    def interrupt(signum, frame):
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)  # the SIGINT handler in force (asyncio's cancels the LLM run)
        else:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
