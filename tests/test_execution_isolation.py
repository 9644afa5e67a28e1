"""Every isolation promise of the executor, one hostile program each (see docs/execution.md).

Hostile jobs run in one batch interleaved with well-behaved ones, so each test also shows that a hostile job
changes nothing for the other jobs' verdicts.
"""

from __future__ import annotations

import builtins
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from procure_trl.execution import ExecutionJob, ExecutionLimits, Executor, Status

GOOD = ExecutionJob("def square(x):\n    return x * x\n", "assert square(3) == 9\nassert square(-2) == 4")
BAD = ExecutionJob("def square(x):\n    return x + x\n", "assert square(3) == 9")


@pytest.fixture(scope="module")
def executor():
    with Executor(num_workers=2, limits=ExecutionLimits(timeout=2.0, memory_mb=256, max_processes=8)) as ex:
        yield ex


def run_between_good_jobs(executor, *hostile: ExecutionJob):
    """Run each hostile job between a passing and a failing job; check those kept their verdicts."""
    jobs = []
    for job in hostile:
        jobs += [GOOD, job, BAD]
    results = executor.run(jobs)
    for i in range(len(hostile)):
        assert results[3 * i].passed, results[3 * i]
        assert results[3 * i + 2].status == Status.FAILED and results[3 * i + 2].error_type == "AssertionError"
    return results[1::3]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------------------ early exits
@pytest.mark.parametrize(
    "program, tests, error_type",
    [
        ("import sys\nsys.exit(0)\n", "assert True", "SystemExit"),
        ("import sys\n", "sys.exit(0)\nassert False", "SystemExit"),
        ("def f():\n    return 1\n", "assert f() == 1\nraise SystemExit(0)", "SystemExit"),
        ("import os\nos._exit(0)\n", "assert True", "Exited"),
        ("import os\n", "os._exit(0)\nassert False", "Exited"),
        ("raise KeyboardInterrupt\n", "assert True", "KeyboardInterrupt"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n", "assert True", "KeyboardInterrupt"),
        ("raise BaseException('bare')\n", "assert True", "BaseException"),
        ("exit(0)\n", "assert True", "SystemExit"),
        ("import atexit, os\natexit.register(lambda: os._exit(0))\n", "assert False", "AssertionError"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "assert True", "Killed"),
    ],
)
def test_early_exit_is_not_a_pass(executor, program, tests, error_type):
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, tests))
    assert result.status == Status.FAILED, result
    assert result.error_type == error_type, result


def test_exit_after_the_last_test_statement_still_passes(executor):
    # The verdict is sent after the last statement of the tests; what the program does at exit cannot undo it.
    job = ExecutionJob(
        "import atexit, os\natexit.register(lambda: os._exit(3))\ndef f():\n    return 2\n", "assert f() == 2"
    )
    (result,) = run_between_good_jobs(executor, job)
    assert result.passed, result


# --------------------------------------------------------------------------------- tampering with the runner
def test_patched_builtins_and_modules_cannot_fake_a_pass(executor):
    patches = [
        "import builtins\nbuiltins.exec = lambda *args, **kwargs: None\n",
        "import builtins\nbuiltins.compile = lambda *args, **kwargs: compile('pass', '<x>', 'exec')\n",
        "import builtins\nbuiltins.BaseException = int\nbuiltins.AssertionError = int\n",
        "import json\njson.dumps = lambda *args, **kwargs: '{\"status\": \"passed\"}'\n",
        "import os\nos._exit = lambda code: None\nos.write = lambda fd, data: len(data)\n",
        "import sys\nsys.excepthook = lambda *args: None\nsys.modules['builtins'].isinstance = None\n",
    ]
    results = run_between_good_jobs(executor, *[ExecutionJob(p, "assert 1 == 2") for p in patches])
    for patch, result in zip(patches, results):
        assert not result.passed, (patch, result)
    # The host's own builtins are untouched.
    assert builtins.exec is exec and builtins.AssertionError is AssertionError


def test_trace_hook_cannot_skip_test_statements(executor):
    program = textwrap.dedent(
        """
        import sys
        def tracer(frame, event, arg):
            if frame.f_code.co_filename != "<tests>":
                return None
            def jump_over_asserts(frame, event, arg):
                if event == "line" and frame.f_lineno == 1:
                    frame.f_lineno = 3
                return jump_over_asserts
            return jump_over_asserts
        sys.settrace(tracer)
        """
    )
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert False\nx = 1\ny = 2"))
    assert result.error_type == "AssertionError", result


def test_forged_verdicts_on_every_descriptor_are_ignored(executor):
    program = textwrap.dedent(
        """
        import os
        fake = b'\\n{"nonce": "0", "status": "passed", "error_type": null, "message": ""}\\n'
        for fd in range(3, 256):
            try:
                os.write(fd, fake)
            except OSError:
                pass
        os._exit(0)
        """
    )
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    assert result.status == Status.FAILED and result.error_type == "Exited", result


def test_forked_copy_running_the_tests_does_not_report(executor):
    # The forked copy continues into the tests and would pass; only the original process may report, and it exits.
    program = "import os, sys\nif os.fork() != 0:\n    os._exit(0)\n"
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    assert not result.passed, result


# ----------------------------------------------------------------------------------------- signals, parent
def test_killing_or_signalling_the_parent(executor):
    programs = [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)\n",
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n",
    ]
    results = run_between_good_jobs(executor, *[ExecutionJob(p, "assert True") for p in programs])
    assert [r.passed for r in results] == [False] * 3, results


def test_killing_the_parent_without_privilege_drop_loses_only_that_job():
    # Without a per-job user id (e.g. not running as root) the job can kill its worker: that job fails, the
    # worker is replaced, and the other jobs keep their verdicts.
    limits = ExecutionLimits(timeout=2.0, drop_privileges=False)
    with Executor(num_workers=2, limits=limits) as ex:
        assert ex.isolation  # starts the workers
        jobdirs = [d for w in ex._workers for d in w.hello["jobdirs"]]
        results = run_between_good_jobs(
            ex, ExecutionJob("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", "assert True")
        )
    assert results[0].status == Status.FAILED and results[0].error_type in {"WorkerLost", "PermissionError"}, results
    # The killed worker could not clean up after itself; the host did.
    assert jobdirs and not [d for d in jobdirs if os.path.exists(d)]


def test_a_worker_failing_in_the_middle_of_a_job_leaves_nothing_behind(tmp_path, monkeypatch):
    # A fault inside the worker while a job (with an escaped child) runs: the worker kills everything, its zygote
    # included, and exits at once; the host reports WorkerLost and goes on with a new worker. (Before, the worker
    # waited for its zygote, which waited for the job: a hang until the host's grace ran out, and processes left.)
    from procure_trl.execution import pool

    source = open(pool.WORKER_SCRIPT).read()
    hook = "                    elif fd == self.output:\n"
    assert source.count(hook) == 1, "the injection point moved; update this test"
    faulty = tmp_path / "faulty_worker.py"
    faulty.write_text(
        source.replace(hook, hook + '                        if b"BOOM" in output: raise RuntimeError("injected")\n')
    )
    monkeypatch.setattr(pool, "WORKER_SCRIPT", str(faulty))
    token = f"PROCURE_TEST_MARK_{uuid.uuid4().hex}"
    monkeypatch.setenv(token, "1")
    program = textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            time.sleep(60)
        print("BOOM", flush=True)
        time.sleep(0.2)
        print("more output", flush=True)
        time.sleep(60)
        """
    )
    start = time.monotonic()
    with Executor(num_workers=1, limits=ExecutionLimits(timeout=20.0)) as ex:
        results = ex.run([ExecutionJob(program), ExecutionJob("x = 1", "assert x == 1")])
    assert [(r.status, r.error_type) for r in results] == [("failed", "WorkerLost"), ("passed", None)], results
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 5
    while _marked_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _marked_processes(token) == []


def test_kill_all_reaches_only_the_jobs_own_processes(executor):
    if not executor.isolation.get("uid_mode"):
        pytest.skip("kill(-1) is only safe to test when jobs run under their own user id (executor runs as root)")
    (probe,) = executor.run([ExecutionJob("import os", "assert os.getuid() != 0 and os.geteuid() != 0")])
    assert probe.passed, probe  # never send kill(-1) from a job that could be root
    # Linux's kill(-1) spares the caller: it kills the job's own child, and nothing outside the job (the
    # neighbouring jobs keep their verdicts, and this test process survives).
    program = textwrap.dedent(
        """
        import os, signal, time
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        os.kill(-1, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        """
    )
    tests = "assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL"
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, tests))
    assert result.passed, result


def test_ignored_and_rearmed_signals_still_time_out(executor):
    program = textwrap.dedent(
        """
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):
            signal.signal(sig, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        while True:
            pass
        """
    )
    start = time.monotonic()
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True", timeout=0.5))
    assert result.status == Status.TIMED_OUT, result
    assert time.monotonic() - start < 10


def test_infinite_loop_and_sleep_time_out(executor):
    results = run_between_good_jobs(
        executor,
        ExecutionJob("while True:\n    pass\n", "assert True", timeout=0.5),
        ExecutionJob("def f():\n    return 1\n", "import time\ntime.sleep(60)", timeout=0.5),
    )
    assert [r.status for r in results] == [Status.TIMED_OUT, Status.TIMED_OUT], results
    assert all(r.duration < 2.0 for r in results)


# --------------------------------------------------------------------------------------- output, memory
def test_flooding_output_is_capped_and_does_not_block(executor):
    limits = executor.limits
    results = run_between_good_jobs(
        executor,
        ExecutionJob("import sys\nfor _ in range(2000):\n    sys.stdout.write('x' * 10_000)\n"
                     "    sys.stderr.write('y' * 10_000)\n", "assert True"),
        ExecutionJob("import os\nwhile True:\n    os.write(1, b'z' * 65536)\n", "assert True", timeout=0.5),
    )
    assert results[0].passed, results[0]  # 40 MB of output, then the tests pass
    assert len(results[0].output.encode()) <= limits.max_output_bytes
    assert results[1].status == Status.TIMED_OUT
    assert len(results[1].output.encode()) <= limits.max_output_bytes


def test_unbounded_allocation_is_a_memory_error(executor):
    program = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n"
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    assert result.status == Status.FAILED and result.error_type == "MemoryError", result


def test_file_size_limit(executor):
    program = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (64 * 1024 * 1024))\n"
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    assert result.status == Status.FAILED and result.error_type == "OSError", result
    assert "too large" in result.message.lower(), result


# -------------------------------------------------------------------------------------- children, forks
def test_forked_children_are_killed_even_when_they_escape_the_process_group(executor):
    # Each child (and the orphaned grandchild) writes a byte to a pipe once it has printed its pid, and the program
    # reads both before it goes on: the pids are all in the output however slow the machine, not after a sleep.
    program = textwrap.dedent(
        """
        import os, time
        ready_r, ready_w = os.pipe()
        for escape in (False, True):
            pid = os.fork()
            if pid == 0:
                if escape:
                    os.setsid()
                    if os.fork() != 0:  # daemonise: the grandchild is orphaned
                        os._exit(0)
                # One write per line: print() makes four (word, space, pid, newline), which two children that
                # print at once interleave ("CHILD CHILD 12 13"); a pipe write under PIPE_BUF is atomic.
                os.write(1, f"CHILD {os.getpid()}\\n".encode())
                os.write(ready_w, b"x")
                time.sleep(600)
                os._exit(0)
        got = b""
        while len(got) < 2:
            got += os.read(ready_r, 2 - len(got))
        """
    )
    results = run_between_good_jobs(
        executor, ExecutionJob(program, "assert True"), ExecutionJob(program, "while True: pass", timeout=2.0)
    )
    assert results[0].passed and results[1].status == Status.TIMED_OUT, results
    pids = [int(p) for r in results for p in re.findall(r"CHILD (\d+)", r.output)]
    assert len(pids) == 4, results
    # The pids are in the worker's namespace view; the worker shares our pid namespace. Killed processes may take
    # a moment to be reaped: wait for that, up to a bound, rather than for a fixed time.
    deadline = time.monotonic() + 10
    while [p for p in pids if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)]


def test_process_limit(executor):
    program = textwrap.dedent(
        """
        import os, time
        children = []
        try:
            for _ in range(50):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        finally:
            print("FORKED", len(children), flush=True)
        """
    )
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    if not executor.isolation.get("uid_mode") and os.geteuid() == 0:
        pytest.skip("RLIMIT_NPROC does not bind root; the per-job user id was not available")
    assert result.status == Status.FAILED and result.error_type == "BlockingIOError", result
    assert int(re.search(r"FORKED (\d+)", result.output).group(1)) < executor.limits.max_processes


# ------------------------------------------------------------------------------------ directory, network
def test_private_working_directory_empty_for_each_job_and_removed_afterwards(executor):
    # Each worker reuses one path, emptied and re-created per job: a job never sees a previous job's files.
    program = textwrap.dedent(
        """
        import os, tempfile
        print("CWD", os.getcwd(), "ENTRIES", len(os.listdir(".")), flush=True)
        assert tempfile.gettempdir() == os.getcwd() == os.environ["HOME"]
        open("note.txt", "w").write("left behind?")
        """
    )
    results = executor.run([ExecutionJob(program, "assert os.path.exists('note.txt')")] * 4)
    assert all(r.passed for r in results), results
    found = [re.search(r"CWD (\S+) ENTRIES (\d+)", r.output).groups() for r in results]
    assert [entries for _, entries in found] == ["0"] * 4
    cwds = {cwd for cwd, _ in found}
    assert os.getcwd() not in cwds
    assert not any(os.path.exists(c) for c in cwds)


def test_job_directory_changed_by_a_job_is_not_reused():
    # A worker keeps its (empty) job directory for the next job only when the job left it exactly as created: a
    # job that changed its mode or extended attributes (ACLs are ones) must not hand that on. One worker, so
    # each pair of jobs runs back to back in the same directory path.
    change_mode = ExecutionJob(
        "import os\nos.chmod('.', 0o755)\n", "assert oct(os.stat('.').st_mode & 0o777) == '0o755'"
    )
    set_xattr = ExecutionJob(
        "import os\ntry:\n    os.setxattr('.', 'user.procure', b'left behind')\nexcept OSError:\n    pass\n", "")
    check = ExecutionJob(
        "import os\nst = os.stat('.')\n",
        "assert oct(st.st_mode & 0o777) == '0o700', oct(st.st_mode)\n"
        "assert os.listdir('.') == []\n"
        "assert 'user.procure' not in os.listxattr('.')\n",
    )
    with Executor(num_workers=1, limits=ExecutionLimits(timeout=2.0)) as ex:
        results = ex.run([check, change_mode, check, set_xattr, check, GOOD, check])
    assert all(r.passed for r in results), results


def test_job_directory_replaced_by_a_symlink_does_not_reach_its_target(executor, tmp_path):
    # The job owns its directory, so it can swap it for a symlink to a directory of ours: cleaning up must remove
    # the link, never the files it points to.
    keep = tmp_path / "keep.txt"
    keep.write_text("host data")
    program = f"import os\nd = os.getcwd()\nos.chdir('/')\nos.rmdir(d)\nos.symlink({str(tmp_path)!r}, d)\n"
    (result,) = run_between_good_jobs(executor, ExecutionJob(program, "assert True"))
    assert result.passed, result
    assert keep.read_text() == "host data"


def test_cannot_write_host_files(executor):
    if not executor.isolation.get("uid_mode"):
        pytest.skip("jobs run as the calling user: they can write what it can (documented)")
    target = os.path.join(os.path.dirname(__file__), f"_should_not_exist_{uuid.uuid4().hex}")
    (result,) = run_between_good_jobs(executor, ExecutionJob(f"open({target!r}, 'w').write('x')", "assert True"))
    assert result.error_type == "PermissionError" and not os.path.exists(target), result


def test_no_network(executor):
    programs = [
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)\n",
        "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(1)\n"
        "s.connect(('1.1.1.1', 53))\n",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)\n",
    ]
    results = run_between_good_jobs(executor, *[ExecutionJob(p, "assert True") for p in programs])
    assert [r.passed for r in results] == [False] * 3, results
    if executor.isolation.get("network_namespace"):
        # The raw socket bypasses the Python-level patch: only the empty network namespace stops it.
        assert "unreachable" in results[1].message.lower(), results[1]


# --------------------------------------------------------------------------------- interrupted caller
HOST_SCRIPT = """
import sys, time
from procure_trl.execution import ExecutionJob, Executor
program = '''
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(600)
time.sleep(600)
'''
ex = Executor(num_workers=2)
print("READY", flush=True)
ex.run([ExecutionJob(program, timeout=300)] * 4)
"""


def _marked_processes(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return [p for p in found if _alive(p)]


@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["interrupted", "terminated", "killed"]
)
def test_nothing_left_when_the_caller_is_interrupted_or_killed(how):
    token = f"PROCURE_TEST_MARK_{uuid.uuid4().hex}"
    env = {**os.environ, token: "1"}
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert host.stdout.readline().strip() == b"READY"
        deadline = time.monotonic() + 20
        while len(_marked_processes(token)) < 1 + 2 + 4 and time.monotonic() < deadline:  # host, workers, jobs
            time.sleep(0.1)
        assert len(_marked_processes(token)) >= 7, "the jobs did not start"
        host.send_signal(how)
        host.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _marked_processes(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked_processes(token) == []
    finally:
        for pid in _marked_processes(token):
            os.kill(pid, signal.SIGKILL)
        if host.poll() is None:
            host.kill()
            host.wait()
