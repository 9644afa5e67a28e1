"""Perturbing one problem within bounds: a long-lived worker process runs the analyses, so that a program whose
analysis runs too long or grows too big costs its own row, never the run.

:class:`BoundedPerturber` sends one problem at a time to a child Python process (``python -c`` importing this
module) and waits at most ``timeout`` seconds for the answer; the child runs under an address-space limit
(``RLIMIT_AS``), so an analysis that grows past it gets ``MemoryError`` instead of taking the machine. A child
that overruns, runs out of memory or dies is killed and replaced; the problem gets :class:`OverLimit` with the
reason, which the engine turns into a bad-input row. The child is started once per parent process and reused
(starting one costs an interpreter and the analysis imports).
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct(">Q")
#: Seconds the child gets to start (import the analyses) and say it is ready.
START_TIMEOUT = 120.0


class OverLimit(Exception):
    """The analysis of one problem passed a bound (time or memory) or its worker died; the message says which."""


@dataclass(frozen=True)
class Outcome:
    """What one concept gave on one problem: ``results`` (from :func:`procure_trl.perturb.engine.perturb_variants`), or
    the ``error`` kind (``"invalid"``: the program is not valid; ``"crash"``: the perturbation raised) and its
    message."""

    results: tuple = ()
    error: str | None = None
    message: str = ""


def perturb_problem(job: dict) -> list[Outcome]:
    """Every concept of ``job`` on its program, in order (pure; runs in the worker). ``job`` holds ``source``,
    ``task_id``, ``concepts``, ``config`` (a :class:`~procure_trl.perturb.engine.GenerationConfig`) and
    ``protected``."""
    from procure_trl.perturb.engine import perturb_variants
    from procure_trl.perturbations import InvalidProgramError

    outcomes = []
    for concept in job["concepts"]:
        try:
            results = perturb_variants(job["source"], job["task_id"], concept, job["config"], job["protected"])
        except InvalidProgramError as err:
            outcomes.append(Outcome(error="invalid", message=str(err)))
        except MemoryError:
            raise  # the whole problem is over the limit (the worker reports it)
        except Exception as err:  # a bug in one perturbation must not cost the rest of the batch
            outcomes.append(Outcome(error="crash", message=f"{type(err).__name__}: {err}"))
        else:
            outcomes.append(Outcome(results=tuple(results)))
    return outcomes


# ------------------------------------------------------------------------------------------------- the child
def _write_frame(fd: int, payload: Any) -> None:
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(memory_mb: int) -> None:
    """The child's loop: read a job frame from stdin, answer ``("ok", outcomes)`` or ``("memory", "")`` on stdout."""
    import resource

    import procure_trl.perturb.engine  # noqa: F401  (imported before the limit: the limit is for the analysis)
    import procure_trl.perturbations  # noqa: F401

    _die_with_parent()
    out = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the frames
    if memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    _write_frame(out, ("ready", os.getpid()))
    while True:
        header = _read_exact(0, _HEADER.size)
        if header is None:
            return  # the parent closed our stdin: done
        body = _read_exact(0, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            answer: tuple = ("ok", perturb_problem(pickle.loads(body)))
        except MemoryError:
            answer = ("memory", "")
        _write_frame(out, answer)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a parent killed mid-job must not leave it running)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass  # elsewhere: the parent closes it at exit


# ------------------------------------------------------------------------------------------------ the parent
class BoundedPerturber:
    """Runs :func:`perturb_problem` in a worker process limited to ``memory_mb`` MiB of address space (0: no
    limit), each job within the ``timeout`` seconds :meth:`run` is given."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.process: subprocess.Popen | None = None

    def run(self, job: dict, timeout: float) -> list[Outcome]:
        """The outcomes of ``job``; raises :class:`OverLimit` (the worker is replaced) when a bound is passed."""
        process = self._ensure()
        try:
            _write_frame(process.stdin.fileno(), job)
        except OSError:  # the worker died between jobs
            self.close()
            process = self._ensure()
            _write_frame(process.stdin.fileno(), job)
        answer = self._answer(process, timeout)
        if answer is None:
            code = process.poll()
            self.close()
            if code is None:
                raise OverLimit(f"its analysis took longer than {timeout:g} s")
            raise OverLimit(f"its analysis worker died ({_exit_text(code)}), probably past the "
                            f"{self.memory_mb} MiB memory limit")
        kind, payload = answer
        if kind == "memory":
            self.close()  # after MemoryError a process may be in any state: start afresh
            raise OverLimit(f"its analysis needed more than {self.memory_mb} MiB of memory")
        return payload

    def _ensure(self) -> subprocess.Popen:
        if self.process is not None and self.process.poll() is None:
            return self.process
        paths = os.pathsep.join(p for p in sys.path if p)  # the child imports this package from where we did
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from procure_trl.perturb.bounded import serve; serve({int(self.memory_mb)})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            start_new_session=True,  # a ^C in the terminal reaches the parent, which then closes the worker
            env={**os.environ, "PYTHONPATH": paths},
        )
        hello = self._answer(self.process, START_TIMEOUT)
        if not hello or hello[0] != "ready":
            self.close()
            raise RuntimeError("the analysis worker process did not start (see the messages above)")
        return self.process

    @staticmethod
    def _answer(process: subprocess.Popen, timeout: float):
        """The next frame from ``process``, or None when it has not come within ``timeout`` seconds or never will."""
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        need = _HEADER.size
        while len(buffer) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, max(need - len(buffer), 1 << 16))
            if not chunk:
                return None
            buffer += chunk
            if need == _HEADER.size and len(buffer) >= _HEADER.size:
                need = _HEADER.size + _HEADER.unpack_from(buffer)[0]
        return pickle.loads(bytes(buffer[_HEADER.size:need]))

    def close(self) -> None:
        """Stop the worker (killed: it holds no state worth a clean exit)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _exit_text(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit status {code}"


_shared: dict[int, BoundedPerturber] = {}


def shared_perturber(memory_mb: int) -> BoundedPerturber:
    """One worker per memory limit for this process, reused by every run (closed at exit)."""
    if memory_mb not in _shared:
        _shared[memory_mb] = BoundedPerturber(memory_mb)
    return _shared[memory_mb]


@atexit.register
def _close_shared() -> None:
    for perturber in _shared.values():
        perturber.close()
