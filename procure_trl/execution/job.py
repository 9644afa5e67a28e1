"""What goes into the executor (:class:`ExecutionJob`) and what comes out (:class:`ExecutionResult`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(str, enum.Enum):
    """Verdict of one job. A ``str`` enum: ``Status.PASSED == "passed"``."""

    #: the program and all of its tests ran to the end without an exception
    PASSED = "passed"
    #: the program or a test raised, exited early, crashed or was killed by a resource limit
    FAILED = "failed"
    #: the wall-clock (or CPU-time) limit was reached before the tests finished
    TIMED_OUT = "timed_out"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ExecutionJob:
    """One program and the tests to run after it, in the same namespace.

    Args:
        program: Python source, e.g. a problem's prompt followed by a candidate solution.
        tests: Python source executed after ``program`` in the same namespace; it raises when the program is
            wrong. Empty tests mean "the program runs without raising".
        timeout: Wall-clock seconds for this job; ``None`` uses :attr:`ExecutionLimits.timeout`.
    """

    program: str
    tests: str = ""
    timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("program", "tests"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"ExecutionJob.{name} must be a str of Python source, got {type(value).__name__}")


@dataclass(frozen=True)
class ExecutionResult:
    """The verdict on one job.

    Args:
        status: :class:`Status` (compares equal to ``"passed"``, ``"failed"``, ``"timed_out"``).
        error_type: Why it did not pass: the exception's class name (``"AssertionError"``, ``"SyntaxError"``,
            ``"SystemExit"``, ``"MemoryError"``, ...), ``"Exited"`` (the process ended before the tests did,
            e.g. ``os._exit``), ``"Killed"`` (a signal, e.g. a resource limit), ``"Timeout"``,
            ``"CPUTimeExceeded"`` or ``"WorkerLost"`` (the job killed its worker). ``None`` when passed.
        message: A short human-readable explanation (empty when passed).
        duration: Wall-clock seconds the job ran.
        output: The first ``ExecutionLimits.max_output_bytes`` bytes of the program's stdout and stderr,
            decoded as UTF-8 (undecodable bytes replaced).
    """

    status: Status
    error_type: str | None
    message: str
    duration: float
    output: str = ""

    @property
    def passed(self) -> bool:
        """True when the tests ran to the end without raising."""
        return self.status == Status.PASSED
