"""pytest plugin: fail the session if a process started by the tests is still alive at its end.

Enable it from ``tests/conftest.py`` with ``pytest_plugins = ["plugin_process_guard"]``.

How a leftover is found, two ways, because either alone can miss one:

* every process the suite starts inherits the environment variable ``PROCURE_PROCESS_GUARD=<token>``, so a
  process that was orphaned to init still carries the token in ``/proc/<pid>/environ``;
* the pytest process is made a child subreaper, so a process that cleared its environment and was then
  orphaned is re-parented to pytest and found among its descendants.

Leftovers are listed, killed (so one bad run does not litter the machine), and the session fails. The
helpers multiprocessing keeps for the life of the interpreter (resource tracker, forkserver) and the rule engine's
analysis worker are allowed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
import uuid

import pytest

TOKEN_VARIABLE = "PROCURE_PROCESS_GUARD"
#: Seconds leftovers get to exit on their own (an executor closing, a server shutting down) before they count;
#: the environment variable PROCURE_PROCESS_GUARD_GRACE overrides it.
GRACE_SECONDS = 10.0
# The rule engine's analysis worker (procure_trl.perturb.bounded) is one such helper too: one per
# interpreter, reused by every run, closed at exit and killed with its parent.
_ALLOWED = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "procure_trl.perturb.bounded")
_PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def leftover_processes(token: str, root: int) -> dict[int, str]:
    """Live processes (zombies excluded) that descend from ``root`` or carry ``token``: pid -> command line."""
    parents, states = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                parents[int(entry)], states[int(entry)] = info
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    found = {}
    for pid in parents:
        if pid == root or states[pid] in ("Z", "X"):
            continue
        ancestor, hops = parents.get(pid), 0
        while ancestor not in (None, 0, 1, root) and hops < 256:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == root or marker in _read(f"/proc/{pid}/environ"):
            cmdline = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode("utf-8", "replace").strip()
            if not any(name in cmdline for name in _ALLOWED):
                found[pid] = cmdline or f"[pid {pid}]"
    return found


def pytest_configure(config: pytest.Config) -> None:
    if not os.path.isdir("/proc/self"):
        return  # not Linux: nothing to check with
    token = uuid.uuid4().hex
    os.environ[TOKEN_VARIABLE] = token
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    # Processes already running before the tests (none expected) are not the tests' doing.
    config.stash[_KEY] = (token, set(leftover_processes(token, os.getpid())))


_KEY = pytest.StashKey[tuple]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _KEY not in session.config.stash:
        return
    token, before = session.config.stash[_KEY]
    deadline = time.monotonic() + float(os.environ.get("PROCURE_PROCESS_GUARD_GRACE", GRACE_SECONDS))
    while True:
        left = {p: c for p, c in leftover_processes(token, os.getpid()).items() if p not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not left:
        return
    lines = [f"  pid {pid}: {cmd[:200]}" for pid, cmd in sorted(left.items())]
    message = "processes started by the test suite were still alive at its end (now killed):\n" + "\n".join(lines)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "process guard", red=True)
        reporter.write_line(message)
    else:
        print(message)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
