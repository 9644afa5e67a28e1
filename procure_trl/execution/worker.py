"""The executor's worker: a long-lived, single-threaded process whose zygote forks one short-lived child per job.

Run as ``python -I path/to/worker.py`` by :class:`procure_trl.execution.Executor`. This file imports only the
standard library and nothing from ``procure_trl``, so the worker starts in milliseconds, holds no threads
(forking is safe) and cannot be affected by the rest of the package.

Protocol: frames of a 4-byte big-endian length followed by UTF-8 JSON, over the worker's stdin (jobs in) and
stdout (results out). The worker first sends a hello frame describing which isolation layers it could set up,
then answers each job frame with exactly one result frame. EOF on stdin, even in the middle of a job, makes the
worker kill the running job and everything it started, clean up and exit: a host that dies leaves nothing behind.

Processes: right after start-up (modules preloaded, heap frozen) the worker forks a **zygote**, whose only work is
to fork the jobs' children: forking costs in proportion to the forking process's memory, and every page the
forking process writes afterwards is copied, so the worker's own per-job work (protocol, compile cache, polling,
verdicts) stays out of it. Per job:

1. the worker compiles ``program`` and ``tests`` (cached by source; a SyntaxError is answered without a process),
   makes sure the private job directory is empty and owned by the job's user (re-created unless the previous job
   left it exactly as created and this job was already queued) and sends the zygote the compiled code, the
   limits, the user id and a fresh random nonce;
2. the zygote forks a child that starts a new session (its own process group), drops to an unprivileged user id
   when the worker is root, lowers its resource limits, runs ``program`` then ``tests`` and, only if the last
   statement of the tests completed, writes ``passed`` together with the nonce over the verdict pipe; its stdout
   and stderr are the output pipe. The zygote waits for the child and reports its pid and wait status;
3. meanwhile the worker drains the output and watches the wall-clock deadline (then it kills the child's process
   group); once the child has ended it kills the group and every process the job started (the worker is a child
   subreaper, so orphans come back to it), reaps them, reads the verdict and removes the directory (or keeps it,
   see 1.).

The verdict is never read from an exit status: a program that calls ``os._exit(0)`` or forks a copy of itself
does not pass, because only the original child knows the nonce it must send after the tests.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import io
import json
import marshal
import os
import resource
import select
import signal
import stat
import struct
import sys
import time
import types

#: Pure-Python modules most benchmark programs import (``from typing import List`` starts most HumanEval
#: prompts), imported once by the worker so that forked children find them loaded. Deliberately short: every
#: shared library the worker maps (hashlib's OpenSSL, random, socket, ...) makes *every* fork slower.
PRELOADED_MODULES = ("collections", "functools", "heapq", "itertools", "math", "re", "string", "typing")

#: Job user ids are UID_BASE + worker pid when the worker runs as root: unique among live workers on the machine.
UID_BASE = 2_000_000_000
#: Most bytes of verdict the worker reads (a genuine verdict is a few hundred bytes).
MAX_VERDICT_BYTES = 65_536
#: Seconds the worker spends killing and reaping leftover processes of a job before giving up loudly.
REAP_DEADLINE = 5.0
#: Seconds the zygote gets to report the end of a job the worker killed, before the worker gives up on it.
ZYGOTE_GRACE = 5.0

_HEADER = struct.Struct(">I")
#: Value of LD_BIND_NOW the host sets for the worker (any non-empty value works; this one marks it as ours).
_BIND_NOW_MARK = "procure_trl"
_PROBE_LIMITS = {"timeout": 30.0, "memory_mb": 1024, "cpu_seconds": 30, "file_size_mb": 1, "max_processes": 4,
                 "max_output_bytes": 4096, "drop_privileges": True}
_PR_SET_PDEATHSIG = 1
_PR_SET_KEEPCAPS = 8
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CLONE_NEWNET = 0x40000000


# --------------------------------------------------------------------------------------------------- protocol
def encode_frame(message: dict) -> bytes:
    """One protocol frame: 4-byte big-endian length + UTF-8 JSON."""
    body = json.dumps(message).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def take_frame(buffer: bytearray) -> dict | None:
    """Remove and return the first complete frame of ``buffer``; None (buffer untouched) if there is none yet."""
    if len(buffer) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(buffer)
    if len(buffer) < _HEADER.size + size:
        return None
    body = bytes(buffer[_HEADER.size : _HEADER.size + size])
    del buffer[: _HEADER.size + size]
    return json.loads(body.decode("utf-8"))


def decode_frames(buffer: bytearray) -> list[dict]:
    """Remove and return the complete frames at the start of ``buffer`` (partial data stays in it)."""
    messages = []
    while (message := take_frame(buffer)) is not None:
        messages.append(message)
    return messages


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# ------------------------------------------------------------------------------------------------ OS helpers
_libc = ctypes.CDLL(None, use_errno=True)
# The same C library without errno capture, for the calls a child makes on its critical path: with
# ``use_errno`` every call looks up ctypes' per-thread errno slot, and in a freshly forked child each object that
# touches costs a copy-on-write page fault (~5 us each). Functions are looked up here, once, in the worker: a
# lookup in the child would run dlsym and grow the CDLL's attribute dict in every job. A failing call is repeated
# through ``_libc`` to learn its errno (all of them are idempotent).
_libc_fast = ctypes.CDLL(None)
_fast_prctl = _libc_fast.prctl
_fast_capset = _libc_fast.capset


def _prctl(option: int, value: int, value2: int = 0) -> bool:
    return _libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(value2), 0, 0) == 0


def _checked_prctl(option: int, value: int) -> None:
    """prctl(option, value) on the fast path; raise OSError with its errno if it fails."""
    if _fast_prctl(option, value, 0, 0, 0) != 0 and not _prctl(option, value):
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


# capset(2) arguments, built once: the child only passes pointers (building ctypes objects there costs page copies).
_CAP_HEADER = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
# two {effective, permitted, inheritable} triples: capabilities 0-31, then 32-63
_CAP_DATA = (ctypes.c_uint32 * 6)(
    1 << _CAP_DAC_READ_SEARCH, 1 << _CAP_DAC_READ_SEARCH, 1 << _CAP_DAC_READ_SEARCH, 0, 0, 0
)
_CAP_ARGS = (ctypes.byref(_CAP_HEADER), ctypes.byref(_CAP_DATA))


def _become_unprivileged(uid: int) -> None:
    """Switch to ``uid`` (and gid) keeping only ``CAP_DAC_READ_SEARCH``.

    Why keep that one: the interpreter and its site-packages may live where only root can traverse (here:
    ``/root/.pyenv``, mode 0700); without read access a program could not import the standard library. The
    capability grants reading and directory search, nothing else: the job still cannot write the host's files,
    signal other users' processes, or exceed ``RLIMIT_NPROC``. ``no_new_privs`` (set by the worker) stops
    regaining root through a set-uid binary.

    The worker has set ``PR_SET_KEEPCAPS`` once (it is inherited across fork, cleared by execve), so after
    ``setuid`` the permitted set survives with an empty effective set, and ``capset`` narrows it to the one
    capability.
    """
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if _fast_capset(*_CAP_ARGS) != 0 and _libc.capset(*_CAP_ARGS) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    # Ambient: a Python the program starts with subprocess can read the interpreter too.
    _fast_prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, _CAP_DAC_READ_SEARCH, 0, 0)


def _isolate_network() -> bool:
    """Move the worker (and so every job it forks) into an empty network namespace; False if not permitted."""
    return _libc.unshare(_CLONE_NEWNET) == 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc."""
    try:  # (raw descriptors: a third of the cost of open(); this runs after every job)
        fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
        try:
            return [int(p) for p in os.read(fd, 1 << 20).split()]
        finally:
            os.close(fd)
    except OSError:  # kernel without CONFIG_PROC_CHILDREN: scan every process's parent
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        return found


def _count_processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_process_and_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` and the process itself (it may not lead a group: a job's child
    that has not called setsid yet, or an escaped process)."""
    _kill_group(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_all_of_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` with one atomic ``kill(-1)`` from a helper that becomes ``uid``.

    Atomic matters: a fork bomb cannot outrun a scan-and-kill loop, but ``kill(-1)`` walks the process list
    under the kernel's task-list lock.
    """
    helper = os.fork()
    if helper == 0:
        try:
            # The worker keeps capabilities across setuid for its jobs (PR_SET_KEEPCAPS); this helper must not.
            if not _prctl(_PR_SET_KEEPCAPS, 0):
                os._exit(1)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(helper, 0)


def _reap_leftovers(uid: int | None, keep: int = 0) -> int:
    """Kill and reap every remaining descendant of the worker except ``keep`` (the zygote); return how many were
    reaped.

    The worker is a child subreaper: when a job's process dies, its descendants (even those that called
    ``setsid``) are re-parented to the worker, so "no children left but the zygote" means "nothing of the job is
    left". Raises :class:`_ZygoteLost` if the zygote itself has died.
    """
    reaped, deadline, me = 0, time.monotonic() + REAP_DEADLINE, os.getpid()
    while True:
        while True:  # reap what has ended (never blocks; 0 while only live children remain)
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if not pid:
                break
            if pid == keep:
                raise _ZygoteLost("the zygote process died")
            reaped += 1
        left = [child for child in _children(me) if child != keep]
        if not left:
            return reaped
        if time.monotonic() > deadline:
            print(f"procure_trl executor: could not reap processes {left}", file=sys.stderr)
            return reaped
        if uid is not None:
            _kill_all_of_uid(uid)
        for child in left:
            _kill_process_and_group(child)
        time.sleep(0.001)


def _remove_tree(path: str) -> None:
    """Delete a job's directory. Hand-written because importing shutil maps zlib, bz2 and lzma into the worker
    (slower forks); falls back to shutil for what this does not handle (e.g. absurdly deep nesting)."""
    try:
        os.rmdir(path)  # most jobs write nothing
        return
    except OSError:
        pass
    try:
        # The job owns its directory, so it may have replaced it (e.g. by a symlink to a directory of ours):
        # remove the entry itself, never what it points to.
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        stack, dirs = [path], []
        while stack:
            current = stack.pop()
            dirs.append(current)
            try:
                entries = list(os.scandir(current))
            except PermissionError:  # the program removed our permissions (matters when not root)
                os.chmod(current, 0o700)
                entries = list(os.scandir(current))
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
        for d in reversed(dirs):
            os.rmdir(d)
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            print(f"procure_trl executor: could not remove {path}", file=sys.stderr)


def _drain(fd: int, sink: bytearray, cap: int) -> bool:
    """Read what is available from a non-blocking fd into ``sink`` (beyond ``cap`` bytes: read and drop).

    Returns False at EOF.
    """
    while True:
        try:
            chunk = os.read(fd, 65_536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        room = cap - len(sink)
        if room > 0:
            sink += chunk[:room]
        if len(chunk) < 65_536:  # a pipe returns all it holds: it is empty now (no exception to raise and catch)
            return True


# ------------------------------------------------------------------------------------------------ the child
def _deny_network_sockets() -> None:
    """Fallback where the kernel refuses a network namespace: refuse to create IPv4/IPv6 sockets from Python.

    Weaker than the namespace (``_socket``, ctypes or a subprocess get around it), hence only a fallback.
    """
    import socket

    class _NoNetworkSocket(socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
                raise OSError(errno.ENETUNREACH, "network access is disabled for programs run by procure_trl")
            super().__init__(family, type, proto, fileno)

    socket.socket = _NoNetworkSocket  # type: ignore[misc]  # (replacing the class is the point of the fallback)


def _describe(exc: BaseException) -> str:
    """``message`` for an exception: its text and the last line of the program or tests it came from."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("<program>", "<tests>"):
            where = f" ({name} line {tb.tb_lineno})"
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename in ("<program>", "<tests>"):
        where = f" ({exc.filename} line {exc.lineno})"
        text = exc.msg
    else:
        text = str(exc)
    if len(text) > 300:
        text = text[:300] + "..."
    return (text + where).strip()


def _child(
    program,
    tests,
    rlimits: tuple,
    uid: int | None,
    network_namespace: bool,
    verdict_fd: int,
    close_fds: tuple[int, ...],
    jobdir: str,
    nonce: str,
    passed_record: bytes,
    parent_pid: int,
    owner_pid: int,
    # Bound at definition time, so a program that patches builtins, os or json cannot change what runs here.
    _exec=exec,
    _write=os.write,
    _exit=os._exit,
    _getpid=os.getpid,
    _dumps=json.dumps,
    _BaseException=BaseException,
    _type=type,
    _describe=_describe,
    _settrace=sys.settrace,
    _setprofile=sys.setprofile,
) -> None:
    """Body of the forked child: set up isolation, run the compiled job, report; never returns.

    Kept short on purpose: every object the child touches costs a copy-on-write page fault, and this runs once
    per job (HOME, TMPDIR and the standard streams were set up once by the worker and the zygote, which forks us).
    """
    try:
        os.setsid()  # own session and process group: the worker kills the group, and the terminal's ^C misses it
        for fd in close_fds:
            os.close(fd)
        # fd 0 is /dev/null and fds 1 and 2 the output pipe, inherited from the zygote (see _zygote).
        os.chdir(jobdir)  # as root still: the directory belongs to the job's user
        # Already done by the worker and inherited: no_new_privs, SIGXFSZ ignored, SIGINT raising
        # KeyboardInterrupt, HOME/TMPDIR (see Worker.__init__).
        if uid is not None:
            _become_unprivileged(uid)
        # After setuid: changing credentials clears the parent-death signal.
        _checked_prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the zygote died before the line above took effect
            _exit(70)
        if uid is None:  # RLIMIT_NPROC counts all of the user's processes: allow the ones already running
            nproc = rlimits[-1][1][0] + _count_processes_of(os.getuid())
            rlimits = rlimits[:-1] + ((resource.RLIMIT_NPROC, (nproc, nproc)),)
        for which, values in rlimits:
            resource.setrlimit(which, values)
        if not network_namespace:
            _deny_network_sockets()
        # The program runs as a real module so that pickling and multiprocessing find its classes.
        module = types.ModuleType("__program__")
        sys.modules["__program__"] = module
        namespace = module.__dict__
    except BaseException as exc:  # set-up failed: say so rather than run unconfined
        _write(verdict_fd, ("\n" + _dumps({"nonce": nonce, "status": "failed", "error_type": "SandboxError",
                                           "message": f"could not set up the sandbox: {exc!r}"}) + "\n").encode())
        _exit(71)

    try:
        _exec(program, namespace)
        # A trace or profile hook set by the program could skip test statements: remove it before the tests.
        _settrace(None)
        _setprofile(None)
        _exec(tests, namespace)
    except _BaseException as exc:
        if _getpid() != owner_pid:
            _exit(72)
        try:
            error_type, message = _type(exc).__name__, _describe(exc)
            record = _dumps({"nonce": nonce, "status": "failed", "error_type": error_type, "message": message})
        except _BaseException:
            record = _dumps({"nonce": nonce, "status": "failed", "error_type": "Error",
                             "message": "(the exception could not be described)"})
        _flush_streams()
        try:
            _write(verdict_fd, ("\n" + record + "\n").encode())
        finally:
            _exit(0)
    # The last statement of the tests completed.
    if _getpid() != owner_pid:  # a copy the program forked got here: only the original process may report
        _exit(72)
    _flush_streams()
    try:
        _write(verdict_fd, passed_record)
    finally:
        _exit(0)


#: The unbuffered standard streams the worker installs (see main) and its children inherit.
_STREAMS: tuple = (None, None)


def _flush_streams() -> None:
    """Flush the program's standard streams, unless they are still the worker's unbuffered ones (nothing to flush:
    and a flush of them would cost the child ~50 copy-on-write page faults, ~0.2 ms, for nothing)."""
    if sys.stdout is _STREAMS[0] and sys.stderr is _STREAMS[1]:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # the program may have replaced or closed them
            pass


# ----------------------------------------------------------------------------------------------- the zygote
#: Zygote -> worker record, one per job once its child has ended: (pid, wait status).
_RECORD = struct.Struct(">ii")


def _read_exact(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a blocking descriptor; None at EOF."""
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _zygote(request_fd: int, record_fd: int, verdict_fd: int, output_fd: int, jobdir: str, network_namespace: bool,
            worker_pid: int) -> None:
    """Body of the zygote: the process that forks every job's child; never returns.

    Why a separate process: forking costs in proportion to the memory of the process that forks, and after a fork
    every page the parent writes is copied. The worker's own work per job (protocol, polling, the compile cache,
    verdicts, the job directory) would make both grow. The zygote is forked from the worker right after start-up
    (preloaded modules, frozen heap) and per job only reads a request, forks, waits for the child and reports its
    pid and wait status. Its stdout and stderr are the jobs' output pipe; it prints nothing itself.
    """
    try:
        _checked_prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the worker (and so do the jobs, see _child)
        if os.getppid() != worker_pid:
            os._exit(0)
        # The jobs' stdout and stderr, set once here instead of in every child (the zygote itself prints nothing).
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        me, close_fds = os.getpid(), (request_fd, record_fd)
        loads, fork, waitpid, write, pack = marshal.loads, os.fork, os.waitpid, os.write, _RECORD.pack
        while True:
            header = _read_exact(request_fd, _HEADER.size)
            if header is None:  # the worker closed the pipe: done
                break
            request = _read_exact(request_fd, _HEADER.unpack(header)[0])
            if request is None:
                raise EOFError("the worker closed the pipe in the middle of a request")
            program, tests, rlimits, uid, nonce, passed_record = loads(request)
            program, tests = loads(program), loads(tests)
            del request
            pid = fork()
            if pid == 0:
                try:
                    _child(program, tests, rlimits, uid, network_namespace, verdict_fd, close_fds, jobdir, nonce,
                           passed_record, me, os.getpid())
                finally:  # _child never returns; should it ever raise, the copy of the zygote must not go on
                    os._exit(73)
            del program, tests
            write(record_fd, pack(pid, waitpid(pid, 0)[1]))
    finally:
        os._exit(0)


# ----------------------------------------------------------------------------------------------- the worker
class _HostGone(Exception):
    """The host closed the protocol pipe: clean up and exit."""


class _ZygoteLost(Exception):
    """The zygote died or stopped answering: the worker cleans up and exits; the host starts a new worker."""


def _parse_verdict(raw: bytes, nonce: str) -> dict | None:
    """The genuine verdict line in ``raw`` (it carries the nonce), or None."""
    for line in raw.decode("utf-8", "replace").splitlines():
        if nonce in line:
            try:
                verdict = json.loads(line)
            except ValueError:
                continue
            if isinstance(verdict, dict) and verdict.get("nonce") == nonce:
                return verdict
    return None


class Worker:
    """State of the worker process: protocol descriptors, received-but-not-run jobs, its zygote, isolation facts.

    Per job the worker compiles (cached), prepares the job directory, sends the zygote a request, waits for the
    child's end or the deadline while draining its output, kills and reaps whatever the job left, and reads the
    verdict. The zygote (see :func:`_zygote`) only forks.
    """

    def __init__(self, proto_in: int, proto_out: int, workdir: str, code_cache_limit: int = 0) -> None:
        self.proto_in, self.proto_out = proto_in, proto_out
        self.inbox = bytearray()  # the host may send the next job while one runs
        self.host_gone = False
        self.pid = os.getpid()
        # One private directory path per worker, emptied and re-created for each job: HOME and TMPDIR can then
        # be set once here instead of in every child.
        self.jobdir = os.path.join(workdir, f"procure-exec-{self.pid}-{os.urandom(4).hex()}")
        os.environ.update(HOME=self.jobdir, TMPDIR=self.jobdir, TMP=self.jobdir, TEMP=self.jobdir)
        self.subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # not inherited: the zygote's orphans come here
        # Inherited by every child (set here once instead of in each): no regaining privileges through a set-uid
        # executable; an oversized write raises OSError (EFBIG) instead of killing with SIGXFSZ; SIGINT raises
        # KeyboardInterrupt as in any interpreter (the worker lives in its own session: no terminal sends it).
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.network_namespace = _isolate_network()
        # Jobs may run under a per-worker user id only when we are root; decided by probe_privilege_drop. Set
        # before the zygote starts (inherited): a job's child keeps its permitted capabilities across setuid, to
        # narrow them to CAP_DAC_READ_SEARCH (see _become_unprivileged).
        self.uid_mode = False
        self.keepcaps = os.geteuid() == 0 and _prctl(_PR_SET_KEEPCAPS, 1)
        #: owner of the job directory kept (empty and unchanged) for the next job, or None: create a new one
        self.kept_jobdir: int | None = None
        self.jobdir_id: tuple[int, int, int, int] = (0, 0, 0, 0)  # (device, inode, uid, gid) at creation
        #: source -> marshalled code: the n candidates of a problem share their tests, and sampled candidates
        #: often repeat; compiling is a pure function of the source (code objects are immutable).
        self.code_cache: dict[str, bytes] = {}
        self.code_cache_bytes, self.code_cache_limit = 0, code_cache_limit
        self._start_zygote()
        # One poll set for the worker's life: the host pipe, the zygote's records and the jobs' output pipe.
        self.poller = select.poll()
        for fd in (self.proto_in, self.records, self.output):
            self.poller.register(fd, select.POLLIN | select.POLLHUP)
        self.records_buffer = bytearray()

    @property
    def job_uid(self) -> int | None:
        """The user id this worker's jobs run as, or None when they run as ours (not root, or the drop failed)."""
        return UID_BASE + self.pid if self.uid_mode else None

    def _start_zygote(self) -> None:
        """Fork the zygote (with the heap of a freshly started worker, frozen) and make the pipes it and its children
        share with the worker: requests, records, verdicts and output."""
        request_r, self.requests = os.pipe()
        self.records, record_w = os.pipe()
        self.verdicts, verdict_w = os.pipe()
        self.output, output_w = os.pipe()
        # Objects alive now are never collected in a child (a collection would copy all their pages), and memory
        # that malloc holds free is returned: fewer pages to copy at every fork.
        gc.collect()
        gc.freeze()
        _libc_fast.malloc_trim(0)
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (self.proto_in, self.proto_out, self.requests, self.records, self.verdicts, self.output):
                    os.close(fd)
                _zygote(request_r, record_w, verdict_w, output_w, self.jobdir, self.network_namespace, self.pid)
            finally:
                os._exit(70)
        self.zygote = pid
        for fd in (request_r, record_w, verdict_w, output_w):
            os.close(fd)
        for fd in (self.records, self.verdicts, self.output):
            os.set_blocking(fd, False)

    def stop_zygote(self) -> None:
        """Close the zygote's request pipe (it exits) and reap it."""
        try:
            os.close(self.requests)
        except OSError:
            pass
        try:
            os.waitpid(self.zygote, 0)
        except ChildProcessError:
            pass

    # ------------------------------------------------------------------------------------------ protocol
    def receive(self) -> dict | None:
        """The next job (blocking); None once the host has closed the pipe."""
        while True:
            job = take_frame(self.inbox)
            if job is not None:
                return job
            if self.host_gone:
                return None
            self._read_host()

    def _read_host(self) -> None:
        chunk = os.read(self.proto_in, 1 << 20)
        if chunk:
            self.inbox += chunk
        else:
            self.host_gone = True

    def send(self, message: dict) -> None:
        _write_all(self.proto_out, encode_frame(message))

    # ----------------------------------------------------------------------------------------------- jobs
    def _compiled(self, source: str, filename: str) -> bytes:
        """Marshalled code of ``source`` (raises SyntaxError/ValueError like compile), from the LRU cache if there."""
        key = filename + "\0" + source
        code = self.code_cache.pop(key, None)
        if code is not None:
            self.code_cache[key] = code  # most recently used last: eviction takes the least recently used
        else:
            # dont_inherit: compile() would otherwise apply this file's own ``from __future__ import annotations``
            # to the program (annotations kept as strings, never evaluated), unlike a plain ``python program.py``.
            code = marshal.dumps(compile(source, filename, "exec", dont_inherit=True))
            self.code_cache_bytes += len(key) + len(code)
            self.code_cache[key] = code
            while self.code_cache_bytes > self.code_cache_limit:  # least recently used first
                old = next(iter(self.code_cache))
                self.code_cache_bytes -= len(old) + len(self.code_cache.pop(old))
        return code

    def run(self, job: dict) -> dict:
        """Run one job and return the result message."""
        limits = job["limits"]
        start = time.monotonic()
        try:
            program = self._compiled(job.pop("program"), "<program>")
            tests = self._compiled(job.pop("tests"), "<tests>")
        except Exception as exc:  # SyntaxError, or ValueError for NUL bytes: no need to fork
            return {"status": "failed", "error_type": type(exc).__name__, "message": _describe(exc),
                    "duration": time.monotonic() - start, "output": ""}
        uid = self.job_uid if limits.get("drop_privileges", True) else None
        owner = os.geteuid() if uid is None else uid
        if self.kept_jobdir != owner:  # else: the previous job left it empty and unchanged
            self._new_jobdir(uid)
        self.kept_jobdir = None
        nonce = os.urandom(16).hex()
        # What json.dumps({"nonce": nonce, "status": "passed"}) gives (the nonce is hex), without the encoder.
        passed_record = f'\n{{"nonce": "{nonce}", "status": "passed"}}\n'.encode()
        request = marshal.dumps((program, tests, _rlimits(limits), uid, nonce, passed_record))
        _write_all(self.requests, _HEADER.pack(len(request)) + request)
        output = bytearray()
        pid = wait_status = None
        deadline = start + limits["timeout"]
        timed_out = False
        give_up = None  # once the job is to be killed: when to stop waiting for the zygote's word
        try:
            # Until the zygote reports the child's end: by then the child has exited, and whatever it started
            # that was not in its group has been handed to this worker (the subreaper).
            while wait_status is None:
                now = time.monotonic()
                if now >= deadline:
                    if give_up is None:
                        timed_out, give_up = not self.host_gone, now + ZYGOTE_GRACE
                    elif now > give_up:
                        raise _ZygoteLost("the zygote did not report a killed job's end")
                    if pid is None:  # the zygote's only child is the job's (none yet: it has not forked)
                        pid = next(iter(_children(self.zygote)), None)
                        if pid is not None:
                            _kill_process_and_group(pid)
                    deadline = now + 0.01  # look again shortly (for the pid, or the zygote's word)
                for fd, _event in self.poller.poll(max(1, int((deadline - now) * 1000) + 1)):
                    if fd == self.records:
                        record = self._read_record()
                        if record is not None:
                            pid, wait_status = record
                    elif fd == self.output:
                        if not _drain(self.output, output, limits["max_output_bytes"]):
                            raise _ZygoteLost("the zygote closed the output pipe")
                    elif fd == self.proto_in:
                        self._read_host()  # the next job, or EOF: then kill the job at once (see above)
                        if self.host_gone:
                            self.poller.unregister(self.proto_in)
                            deadline = 0.0
            if self.host_gone:
                raise _HostGone
            if pid is None:  # (the record that ends the loop holds the pid)
                raise _ZygoteLost("the zygote reported a job's end without its pid")
            _kill_group(pid)  # processes the job left in its group
            duration = time.monotonic() - start
            _reap_leftovers(uid, keep=self.zygote)
        finally:
            # Every process of the job is gone now (or the worker is giving up). Keep the directory for the next
            # job only if that job is already here (an idle worker leaves nothing behind) and the directory is
            # exactly as we made it.
            if not self.host_gone and _HEADER.size <= len(self.inbox) and self._jobdir_untouched(owner):
                self.kept_jobdir = owner
            else:
                self._remove_jobdir()
        verdict = bytearray()
        _drain(self.verdicts, verdict, MAX_VERDICT_BYTES)
        _drain(self.output, output, limits["max_output_bytes"])
        result = {"duration": duration, "output": output.decode("utf-8", "replace")}
        if verdict == passed_record:  # the usual verdict, exactly as the child writes it: no need to parse
            return {**result, "status": "passed", "error_type": None, "message": ""}
        return _verdict(bytes(verdict), nonce, timed_out, wait_status, limits, result)

    def _read_record(self) -> tuple[int, int] | None:
        """The zygote's (pid, wait status) for the running job once it has all arrived; _ZygoteLost at EOF."""
        if not _drain(self.records, self.records_buffer, _RECORD.size):  # one record per job, never more
            raise _ZygoteLost("the zygote exited")
        if len(self.records_buffer) < _RECORD.size:
            return None
        record = _RECORD.unpack(self.records_buffer)
        self.records_buffer.clear()
        return record

    def _new_jobdir(self, uid: int | None) -> None:
        """Create the empty private job directory, owned by the job's user (the child changes into it)."""
        self._remove_jobdir()
        os.mkdir(self.jobdir, 0o700)
        if uid is not None:
            os.chown(self.jobdir, uid, uid)
        st = os.lstat(self.jobdir)
        self.jobdir_id = (st.st_dev, st.st_ino, st.st_uid, st.st_gid)

    def _remove_jobdir(self) -> None:
        self.kept_jobdir = None
        if os.path.lexists(self.jobdir):
            _remove_tree(self.jobdir)

    def _jobdir_untouched(self, owner: int) -> bool:
        """Whether the job directory is still the very directory we created, empty, with its mode, owner and no
        extended attributes (ACLs included): then it is indistinguishable from a fresh one."""
        try:
            st = os.lstat(self.jobdir)
            # (the group is compared with the one it got at creation: not root, that is the user's group)
            if not (stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino, st.st_uid, st.st_gid) == self.jobdir_id
                    and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == owner and st.st_nlink == 2):
                return False
            with os.scandir(self.jobdir) as entries:
                if next(entries, None) is not None:
                    return False
            try:
                return not os.listxattr(self.jobdir, follow_symlinks=False)
            except OSError as exc:
                return exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)  # no extended attributes on this file system
        except OSError:
            return False

    def probe_privilege_drop(self) -> str | None:
        """Try one job under the per-worker user id; None if it works, else why not."""
        if os.geteuid() != 0:
            return "not running as root"
        if not self.keepcaps:
            return "prctl(PR_SET_KEEPCAPS) failed"
        self.uid_mode = True
        probe = self.run({"program": "import json, decimal", "tests": "", "limits": _PROBE_LIMITS})
        if probe["status"] != "passed":
            self.uid_mode = False  # (the zygote keeps PR_SET_KEEPCAPS: harmless, its children then never setuid)
            return f"{probe['error_type']}: {probe['message']}"
        return None


def _rlimits(limits: dict) -> tuple:
    """(resource, (soft, hard)) pairs for setrlimit, built by the worker so the child only applies them."""
    mib = 1024 * 1024
    return (
        (resource.RLIMIT_AS, (limits["memory_mb"] * mib,) * 2),
        (resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1)),
        (resource.RLIMIT_FSIZE, (limits["file_size_mb"] * mib,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NPROC, (limits["max_processes"],) * 2),  # last: adjusted in the child when not root
    )


def _verdict(raw: bytes, nonce: str, timed_out: bool, wait_status: int, limits: dict, result: dict) -> dict:
    """The result message: from the nonce-carrying verdict if any, else from how the child ended."""
    found = _parse_verdict(raw, nonce)
    if found is not None and found.get("status") == "passed":
        return {**result, "status": "passed", "error_type": None, "message": ""}
    if timed_out:
        return {**result, "status": "timed_out", "error_type": "Timeout",
                "message": f"exceeded the wall-clock limit of {limits['timeout']:g} s"}
    if found is not None:
        return {**result, "status": "failed", "error_type": str(found.get("error_type")),
                "message": str(found.get("message", ""))}
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        if sig == signal.SIGXCPU:
            return {**result, "status": "timed_out", "error_type": "CPUTimeExceeded",
                    "message": f"exceeded the CPU-time limit of {limits['cpu_seconds']} s"}
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return {**result, "status": "failed", "error_type": "Killed",
                "message": f"killed by {name} before the tests finished"}
    code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else wait_status
    return {**result, "status": "failed", "error_type": "Exited",
            "message": f"the process exited with status {code} before the tests finished"}


def _default_workdir() -> str:
    """/dev/shm when usable (RAM: a directory costs ~0.1 ms there, ~5 ms on a journaling disk), else $TMPDIR."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return os.environ.get("TMPDIR") or "/tmp"


def _warm_typing_cache() -> None:
    """Evaluate common ``typing`` annotations (``List[int]``, ``Tuple[str, str]``, ``Dict[str, Any]``, ...) once,
    so that forked children find them in typing's own cache.

    Why: most model-written and benchmark programs annotate with ``typing`` generics, evaluated when each ``def``
    runs. On a cache miss typing builds the alias in Python code, which in a fresh child costs ~150 copy-on-write
    page faults (~0.8 ms per job on the development machine); a hit costs about half. Only the standard library
    runs here, never a program; a child that modifies a cached alias changes only its own copy.
    """
    import typing

    atoms = (int, str, float, bool, typing.Any)
    one_arg = (list, set, typing.Optional, typing.Sequence, typing.Iterable, typing.Iterator, tuple)
    # run-time subscriptions that fill typing's caches (typing.Optional/Union on purpose: what programs use);
    # the type checker would read them as (invalid) types
    for atom in atoms:
        for generic in one_arg:
            generic[atom]
        tuple[atom, ...]  # type: ignore[valid-type]
        list[list[atom]]  # type: ignore[valid-type]
        list[tuple[atom, atom]]  # type: ignore[valid-type]
        typing.Optional[list[atom]]  # type: ignore[valid-type]  # noqa: UP045
        for other in atoms:
            tuple[atom, other]  # type: ignore[valid-type]
            dict[atom, other]  # type: ignore[valid-type]
            typing.Union[atom, other]  # noqa: UP007


def _install_unbuffered_streams() -> None:
    """Make sys.stdout/sys.stderr (and their ``__dunder__`` twins) write-through text streams over fds 1 and 2."""
    global _STREAMS
    for name in ("stdout", "stderr"):
        stream = io.TextIOWrapper(io.FileIO(1 if name == "stdout" else 2, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    _STREAMS = (sys.stdout, sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Set by the host only for the dynamic linker of this process (every symbol is bound at start, so a forked
    # child does not run the lazy-binding resolver and copy GOT pages on its first call of, e.g., setuid);
    # programs and their subprocesses get the caller's environment without it.
    if os.environ.get("LD_BIND_NOW") == _BIND_NOW_MARK:
        del os.environ["LD_BIND_NOW"]
    # argv: [workdir ("" for the default), bytes of compiled code to cache]
    workdir = argv[0] if argv and argv[0] else _default_workdir()
    code_cache_limit = int(argv[1]) if len(argv) > 1 else 0
    # Keep the protocol on private descriptors; fd 0 becomes /dev/null and fd 1 our stderr, so nothing else
    # (a stray print, a C library) can corrupt the protocol stream.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    # The children inherit these stream objects, so they need not build their own. Unbuffered (write-through
    # text over the raw descriptor): whatever a program prints is in the output pipe at once, so a child that
    # ends need not flush them (see _flush_streams); a program that prints a lot pays one system call per write.
    _install_unbuffered_streams()
    for name in PRELOADED_MODULES:
        __import__(name)
    _warm_typing_cache()
    worker = Worker(proto_in, proto_out, workdir, code_cache_limit)
    try:
        return _serve(worker, workdir)
    except BaseException as exc:
        # The zygote died (e.g. a job that runs as our own user killed it), or something unexpected happened, maybe
        # in the middle of a job: kill every process left, the zygote included (otherwise stop_zygote below would
        # wait for a zygote that waits for a running job), then exit; the host starts a new worker.
        print(f"procure_trl executor: {exc!r}; the worker exits", file=sys.stderr)
        _reap_leftovers(worker.job_uid)
        worker._remove_jobdir()
        if isinstance(exc, _ZygoteLost):
            return 1
        raise
    finally:
        worker.stop_zygote()


def _serve(worker: Worker, workdir: str) -> int:
    """Say hello, then answer jobs until the host closes the pipe."""
    uid_mode_error = worker.probe_privilege_drop()
    worker.send({
        "hello": True, "pid": worker.pid, "network_namespace": worker.network_namespace,
        "subreaper": worker.subreaper, "uid_mode": worker.uid_mode, "uid_mode_error": uid_mode_error,
        "workdir": workdir, "jobdirs": [worker.jobdir],
    })
    while True:
        job = worker.receive()
        if job is None:
            worker._remove_jobdir()  # kept for a job that never came in full
            return 0
        try:
            result = worker.run(job)
        except _HostGone:
            _reap_leftovers(worker.job_uid, keep=worker.zygote)
            worker._remove_jobdir()
            return 0
        worker.send(result)


if __name__ == "__main__":
    sys.exit(main())
