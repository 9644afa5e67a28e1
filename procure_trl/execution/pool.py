"""The :class:`Executor`: a pool of pre-started worker processes that run jobs in parallel."""

from __future__ import annotations

import atexit
import functools
import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence

from procure_trl.execution import worker as _worker_module
from procure_trl.execution.job import ExecutionJob, ExecutionResult, Status
from procure_trl.execution.limits import ExecutionLimits, check_timeout

#: The worker runs as a script (not ``-m``) so that starting it imports nothing but the standard library.
WORKER_SCRIPT = os.path.abspath(_worker_module.__file__)
#: Seconds a worker gets to start and say hello.
WORKER_START_TIMEOUT = 60.0
#: Extra seconds past a job's timeout before the host gives up on a worker that does not answer
#: (the worker enforces the timeout itself; this only catches a wedged worker).
HOST_GRACE = 10.0
#: Seconds a worker gets to clean up after its stdin is closed, before it is killed.
CLOSE_GRACE = 5.0
#: Jobs queued at each worker: the next job is already there when one finishes, so a worker never waits for
#: the host (on a loaded machine that round trip costs as much as a short job).
PIPELINE_DEPTH = 2
#: Largest job frame queued behind a running job (half a Linux pipe buffer; see _Worker.send).
PIPELINE_MAX_FRAME = 32_768

# Threads in numerical libraries a program might import: one each, the pool provides the parallelism.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

def _worker_env() -> dict:
    """The worker's environment: the caller's, one thread per numerical library, and LD_BIND_NOW (the worker's
    dynamic linker binds every symbol at start instead of in each forked child; the worker removes it from the
    environment its jobs see, unless the caller had set it)."""
    env = {**os.environ, **_WORKER_ENV}
    env.setdefault("LD_BIND_NOW", _worker_module._BIND_NOW_MARK)
    return env


_live_executors: weakref.WeakSet[Executor] = weakref.WeakSet()


@atexit.register
def _close_all_executors() -> None:
    for executor in list(_live_executors):
        executor.close()


@functools.lru_cache(maxsize=64)
def _wire_limits(limits: ExecutionLimits, timeout: float) -> dict:
    """``limits.to_wire(timeout)``, built once per (limits, timeout) instead of once per job (the frozen dataclass
    is hashable; the dict is only read, by json.dumps)."""
    return limits.to_wire(timeout)


class _Worker:
    """Host-side handle of one worker process and the jobs sent to it, oldest first."""

    def __init__(self, workdir: str | None, code_cache_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", WORKER_SCRIPT, workdir or "", str(code_cache_mb << 20)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Own session: a ^C in the terminal reaches the host only, which then shuts workers down cleanly.
            start_new_session=True,
            close_fds=True,
            env=_worker_env(),
        )
        if self.process.stdin is None or self.process.stdout is None:  # (both are pipes: PIPE above)
            raise RuntimeError("the worker process was started without its pipes")
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.fd = self.stdout.fileno()
        self.stdin_fd = self.stdin.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.alive = True
        self.hello: dict | None = None
        #: (job index, timeout) of the jobs sent and not answered yet; the first one is running.
        self.in_flight: deque[tuple[int, float]] = deque()
        #: when the host stops waiting for the running job's answer
        self.deadline = 0.0

    def read(self) -> list[dict]:
        """Frames available now (``alive`` turns False once the worker's stdout is closed: it died)."""
        while True:
            try:
                chunk = os.read(self.fd, 65_536)
            except BlockingIOError:
                break
            if not chunk:
                self.alive = False
                break
            self.buffer += chunk
            if len(chunk) < 65_536:  # the pipe is empty now; the selector says when there is more
                break
        return _worker_module.decode_frames(self.buffer)

    def send(self, index: int, job: ExecutionJob, limits: ExecutionLimits) -> bool:
        """Send a job; False (nothing sent) if it is too big to queue behind the running one."""
        timeout = limits.timeout if job.timeout is None else job.timeout
        frame = _worker_module.encode_frame({"program": job.program, "tests": job.tests,
                                             "limits": _wire_limits(limits, timeout)})
        if self.in_flight and len(frame) > PIPELINE_MAX_FRAME:
            # A queued frame must fit in the pipe buffer: a blocking write here while the worker blocks writing
            # a large result would deadlock. Big jobs wait until the worker is idle (and reading).
            return False
        if self.stdin.closed:  # never write to a descriptor number that may have been reused
            raise BrokenPipeError(f"the pipe to worker {self.process.pid} is closed")
        # Straight to the descriptor (the BufferedWriter around it is always empty): one system call per job.
        _worker_module._write_all(self.stdin_fd, frame)
        if not self.in_flight:
            self.deadline = time.monotonic() + timeout + HOST_GRACE
        self.in_flight.append((index, timeout))
        return True

    def answered(self) -> int:
        """Pop the running job (just answered); the next one starts now. Returns the answered job's index."""
        index, _ = self.in_flight.popleft()
        if self.in_flight:
            self.deadline = time.monotonic() + self.in_flight[0][1] + HOST_GRACE
        return index

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Ask the worker to finish (EOF on its stdin: it kills its job and cleans up), then make sure."""
        try:
            self.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        # A worker that was killed (e.g. by its job) could not remove its job directories.
        for jobdir in (self.hello or {}).get("jobdirs", []):
            if os.path.lexists(jobdir):
                shutil.rmtree(jobdir, ignore_errors=True)


class Executor:
    """Runs many (program, tests) jobs in isolated, resource-limited processes, in parallel.

    ``num_workers`` long-lived worker processes are started on first use (``python -I worker.py``: a clean
    interpreter, not a fork of the caller, so threads in the caller, e.g. from torch or tokenizers, are no
    hazard). Each worker has a zygote process fork a fresh child per job; see :mod:`procure_trl.execution.worker`
    for the isolation layers. Use it as a context manager, or call :meth:`close`; it is reusable across
    :meth:`run` calls.

    This is defence in depth for model-written code, **not a security boundary**: run untrusted or hostile code
    inside a container or VM (see docs/execution.md).

    Args:
        num_workers: Jobs run at once.
        limits: Resource limits applied to every job (a job's own ``timeout`` overrides ``limits.timeout``).
        code_cache_mb: Megabytes of compiled code each worker keeps, by source, so that a program or tests seen
            again are not compiled again (the tests of a problem's n candidates are the same, and sampled candidates
            often repeat; compiling is a pure function of the source). ``0`` compiles every job.
        workdir: Directory in which each job gets its private working directory (removed afterwards).
            ``None``: ``/dev/shm`` when usable (a RAM file system: creating and removing a directory costs
            ~0.1 ms there against ~5 ms on a journaling disk), else ``$TMPDIR`` or ``/tmp``.

    Example::

        >>> from procure_trl.execution import Executor, ExecutionJob
        >>> with Executor(num_workers=2) as executor:
        ...     results = executor.run([ExecutionJob("def f(): return 1", "assert f() == 1")])
        >>> results[0].passed
        True
    """

    def __init__(
        self,
        num_workers: int = 2,
        limits: ExecutionLimits | None = None,
        workdir: str | None = None,
        code_cache_mb: int = 16,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
        if limits is None:
            limits = ExecutionLimits()
        if not isinstance(limits, ExecutionLimits):
            raise TypeError(f"limits must be an ExecutionLimits, got {type(limits).__name__}")
        if not sys.platform.startswith("linux"):
            # Fail loudly: without fork, /proc and rlimits the promises below would silently not hold.
            raise NotImplementedError(f"the executor needs Linux (fork, /proc, rlimits); this is {sys.platform}")
        if isinstance(code_cache_mb, bool) or not isinstance(code_cache_mb, int) or code_cache_mb < 0:
            raise ValueError(
                f"code_cache_mb must be a non-negative integer (0 disables the cache), got {code_cache_mb!r}"
            )
        if workdir is not None and not os.path.isdir(workdir):
            raise ValueError(f"workdir {workdir!r} is not a directory; create it or pass None for the default")
        self.num_workers = num_workers
        self.workdir = None if workdir is None else os.path.abspath(workdir)
        self.code_cache_mb = code_cache_mb
        self.limits = limits
        self._workers: list[_Worker] = []
        self._closed = False
        self._owner_pid = os.getpid()
        # run() calls from several threads take turns (the workers serve one dispatch loop at a time).
        self._lock = threading.Lock()
        _live_executors.add(self)

    # ------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        """Stop every worker and everything they run. Safe to call more than once."""
        self._closed = True
        workers, self._workers = self._workers, []
        if os.getpid() != self._owner_pid:
            return  # a forked copy of the process that started the workers: they are not ours to stop
        for w in workers:  # close all stdins first so the workers clean up in parallel
            try:
                w.stdin.close()
            except OSError:
                pass
        for w in workers:
            w.close()

    @property
    def isolation(self) -> dict:
        """What the workers could set up (network namespace, subreaper, per-worker user id); starts them."""
        self._ensure_workers()
        first = self._workers[0].hello
        if first is None:  # _ensure_workers waits for every worker's hello
            raise RuntimeError("the first worker has not said hello")
        hello = dict(first)
        for private in ("hello", "pid", "jobdirs"):
            hello.pop(private, None)
        return hello

    def _ensure_workers(self) -> None:
        if self._closed:
            raise RuntimeError("this Executor is closed; create a new one")
        missing = self.num_workers - len(self._workers)
        if missing > 0:
            new = [_Worker(self.workdir, self.code_cache_mb) for _ in range(missing)]
            self._workers.extend(new)
            for w in new:
                self._wait_hello(w)

    def _wait_hello(self, w: _Worker) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(w.fd, selectors.EVENT_READ)
            while w.hello is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    w.process.kill()
                    raise RuntimeError(f"an executor worker did not start within {WORKER_START_TIMEOUT:g} s")
                frames = w.read()
                if frames:
                    w.hello = frames[0]
                elif not w.alive:
                    code = w.process.wait()
                    raise RuntimeError(
                        f"an executor worker exited at start with status {code}; its stderr shows why"
                    )

    def _replace(self, w: _Worker) -> _Worker:
        """Kill a dead or wedged worker and start a fresh one in its place."""
        w.close(grace=0.5)
        fresh = _Worker(self.workdir, self.code_cache_mb)
        self._wait_hello(fresh)
        self._workers[self._workers.index(w)] = fresh
        return fresh

    # ------------------------------------------------------------------------------------------------- run
    def run(self, jobs: Sequence[ExecutionJob], progress: bool = False) -> list[ExecutionResult]:
        """Run ``jobs`` and return one :class:`ExecutionResult` per job, in the same order.

        If the caller is interrupted (e.g. ``KeyboardInterrupt``) the pool is shut down, killing every running
        job, and the exception propagates; the executor can then not be used again. Calls from several threads
        are safe: they take turns.
        """
        jobs = list(jobs)
        for i, job in enumerate(jobs):
            if not isinstance(job, ExecutionJob):
                raise TypeError(f"jobs[{i}] must be an ExecutionJob, got {type(job).__name__}")
            if job.timeout is not None:
                check_timeout(job.timeout, f"jobs[{i}].timeout")
        if not jobs:
            return []
        results: list[ExecutionResult | None] = [None] * len(jobs)
        with self._lock:
            self._ensure_workers()
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(jobs), desc="executing", unit="job")
            try:
                _Dispatch(self, jobs, results, bar).run()
            except BaseException:
                self.close()
                raise
            finally:
                if bar is not None:
                    bar.close()
        return results  # type: ignore[return-value]


class _Dispatch:
    """One :meth:`Executor.run`: keeps every worker fed, collects answers, replaces dead or wedged workers."""

    def __init__(self, executor: Executor, jobs: list[ExecutionJob], results: list, bar) -> None:
        self.executor, self.jobs, self.results, self.bar = executor, jobs, results, bar
        self.pending = deque(range(len(jobs)))
        self.selector = selectors.DefaultSelector()

    def run(self) -> None:
        try:
            for w in list(self.executor._workers):
                self.selector.register(w.fd, selectors.EVENT_READ, w)
                self.feed(w)
            while any(w.in_flight for w in self.executor._workers):
                busy = [w for w in self.executor._workers if w.in_flight]
                timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                for key, _ in self.selector.select(timeout):
                    self.collect(key.data)
                now = time.monotonic()
                for w in [w for w in self.executor._workers if w.in_flight and now > w.deadline]:
                    index, timeout = w.in_flight[0]
                    self.record(index, ExecutionResult(
                        Status.TIMED_OUT, "Timeout",
                        f"the worker did not answer within the timeout plus {HOST_GRACE:g} s; it was restarted",
                        timeout + HOST_GRACE))
                    self.restart(w)
        finally:
            self.selector.close()

    def feed(self, w: _Worker) -> None:
        """Keep ``PIPELINE_DEPTH`` jobs queued at ``w`` so it never waits for the host between jobs."""
        while self.pending and len(w.in_flight) < PIPELINE_DEPTH:
            index = self.pending.popleft()
            try:
                if not w.send(index, self.jobs[index], self.executor.limits):
                    self.pending.appendleft(index)
                    return
            except BrokenPipeError:  # the worker died: the job goes back to the queue, and the worker is replaced
                self.pending.appendleft(index)
                self.restart(w)
                return

    def collect(self, w: _Worker) -> None:
        for frame in w.read():
            index = w.answered()
            self.record(index, ExecutionResult(
                status=Status(frame["status"]), error_type=frame["error_type"], message=frame["message"],
                duration=frame["duration"], output=frame["output"]))
        if not w.alive:  # the worker died: its running job killed it, or it crashed
            if w.in_flight:
                code = w.process.wait()
                self.record(w.in_flight[0][0], ExecutionResult(
                    Status.FAILED, "WorkerLost",
                    f"the worker running this job died (status {code}); a program that kills its parent process "
                    "ends here", 0.0))
            self.restart(w)
            return
        self.feed(w)

    def record(self, index: int, result: ExecutionResult) -> None:
        self.results[index] = result
        if self.bar is not None:
            self.bar.update(1)

    def restart(self, w: _Worker) -> None:
        """Replace ``w``; its answered-or-recorded running job is dropped, the queued ones go back in front."""
        unanswered = [i for i, _ in list(w.in_flight) if self.results[i] is None]
        self.pending.extendleft(reversed(unanswered))
        w.in_flight.clear()
        self.selector.unregister(w.fd)
        fresh = self.executor._replace(w)
        self.selector.register(fresh.fd, selectors.EVENT_READ, fresh)
        self.feed(fresh)


def execute(
    jobs: Sequence[ExecutionJob],
    num_workers: int = 2,
    limits: ExecutionLimits | None = None,
    progress: bool = False,
) -> list[ExecutionResult]:
    """Run ``jobs`` once with a temporary :class:`Executor` and return their results in order."""
    with Executor(num_workers=num_workers, limits=limits) as executor:
        return executor.run(jobs, progress=progress)
