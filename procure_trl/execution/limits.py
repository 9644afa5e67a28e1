"""Resource limits applied to every executed program."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ExecutionLimits:
    """Limits for one job. Every field is enforced by the kernel in the job's process, not by Python code
    the program could undo.

    Args:
        timeout: Wall-clock seconds a job may run (program and tests together). On expiry its whole process
            group, and every process it started, is killed with ``SIGKILL`` and the verdict is ``timed_out``.
            A job's own :attr:`ExecutionJob.timeout` overrides it.
        memory_mb: Address-space limit (``RLIMIT_AS``) in MiB. Allocating past it raises ``MemoryError`` in
            the program.
        cpu_seconds: CPU-time limit (``RLIMIT_CPU``). ``None`` derives it from the timeout
            (``ceil(timeout) + 1``), so that it only catches what the wall clock would miss.
        file_size_mb: Largest file the program may write (``RLIMIT_FSIZE``), in MiB; a write past it raises
            ``OSError`` (``EFBIG``).
        max_processes: Processes the job may have at once, itself included. Enforced with ``RLIMIT_NPROC``,
            which counts every process of a user: as root each worker runs its jobs under a user id of its
            own (see ``drop_privileges``) so the count is exact; otherwise the limit is set to the user's
            current process count plus this number.
        max_output_bytes: How much of the program's stdout+stderr is kept in :attr:`ExecutionResult.output`.
            The rest is read and discarded, so a flooding program cannot block or fill memory.
        drop_privileges: When the executor runs as root, run each job under an unprivileged user id unique
            to its worker (``2_000_000_000 + worker pid``). The job then cannot signal its worker or other
            jobs, cannot write the host's files, and ``max_processes`` is exact. Ignored when not root.
    """

    timeout: float = 3.0
    memory_mb: int = 1024
    cpu_seconds: int | None = None
    file_size_mb: int = 16
    max_processes: int = 32
    max_output_bytes: int = 16_384
    drop_privileges: bool = True

    def __post_init__(self) -> None:
        check_timeout(self.timeout, "ExecutionLimits.timeout")
        for name in ("memory_mb", "file_size_mb", "max_processes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ExecutionLimits.{name} must be a positive integer, got {value!r}")
        if self.max_output_bytes < 0:
            raise ValueError(f"ExecutionLimits.max_output_bytes must be >= 0, got {self.max_output_bytes!r}")
        if self.cpu_seconds is not None and (not isinstance(self.cpu_seconds, int) or self.cpu_seconds <= 0):
            raise ValueError(
                f"ExecutionLimits.cpu_seconds must be a positive integer or None (derived from the timeout), "
                f"got {self.cpu_seconds!r}"
            )

    def to_wire(self, timeout: float) -> dict:
        """The limits as the worker reads them, for a job whose effective timeout is ``timeout``."""
        wire = asdict(self)
        wire["timeout"] = float(timeout)
        wire["cpu_seconds"] = self.cpu_seconds if self.cpu_seconds is not None else math.ceil(timeout) + 1
        return wire


def check_timeout(timeout: float, what: str) -> float:
    """Return ``timeout`` as a float, or raise a ValueError naming ``what`` when it is not a positive number."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)
