"""``procure perturb`` as a long job: interrupt (SIGINT / SIGTERM), resume, no clobber, early output checks.

Both generators run as real subprocesses of the ``procure`` CLI; the LLM one against the loopback server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_cli_rows import cli_args, rename_reply, write_problems  # noqa: E402
from openai_server import ChatServer  # noqa: E402
from plugin_process_guard import TOKEN_VARIABLE, leftover_processes  # noqa: E402

from procure_trl.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: The MBPP fixture rows hold 14 problems: with one test worker the rule engine writes them in two batches.
MBPP_ARGS = ["perturb", "--benchmark", "mbpp", "--limit", "14", "--num-workers", "1", "--no-progress"]
MBPP_PAIRS = 14 * 5


def procure(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "procure_trl.cli", *args], cwd=REPO, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def interrupt_when(args: list[str], env: dict, ready, sig: int) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Start ``procure ARGS``, send ``sig`` once ``ready()`` holds; the finished process and its descendants then."""
    token = uuid.uuid4().hex  # marks every process this run starts, even one orphaned to init
    proc = subprocess.Popen([sys.executable, "-m", "procure_trl.cli", *args], cwd=REPO,
                            env={**env, TOKEN_VARIABLE: token}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, f"the run ended before the interrupt: {proc.communicate()}"
            assert time.monotonic() < deadline, "the run made no progress in time"
            time.sleep(0.02)
        children = list(leftover_processes(token, proc.pid))
        assert proc.poll() is None, "the run ended before the interrupt"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    deadline = time.monotonic() + 5  # already gone when the run exits; a little grace for the kernel
    while (left := leftover_processes(token, proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind by the interrupted run: {left}"
    assert children, "the run had started no worker process: the check above proves nothing"
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"]
    return subprocess.CompletedProcess(args, proc.returncode, out, err), children


def assert_interrupted(result: subprocess.CompletedProcess, out: Path, total: int) -> None:
    assert result.returncode == 130, result.stderr[-2000:]
    match = re.fullmatch(r"interrupted: (\d+) of (\d+) pairs written; rerun with --resume\n", result.stderr)
    assert match, result.stderr[-2000:]  # one line, no traceback
    assert int(match[1]) == line_count(out) and int(match[2]) == total
    assert 0 < int(match[1]) < total


def assert_one_line_per_pair(out: Path, total: int) -> None:
    keys = [(r["task_id"], r["concept"]) for r in map(json.loads, out.read_text().splitlines())]
    assert len(keys) == len(set(keys)) == total


@pytest.fixture(scope="module")
def mbpp_reference(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("reference") / "mbpp.jsonl"
    result = procure([*MBPP_ARGS, "--output", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    return out.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rule_engine_interrupted_then_resumed_gives_the_same_bytes(mbpp_reference, tmp_path, sig):
    out = tmp_path / "mbpp.jsonl"
    args = [*MBPP_ARGS, "--output", str(out)]
    result, _ = interrupt_when(args, dict(os.environ), lambda: line_count(out) > 0, sig)
    assert_interrupted(result, out, MBPP_PAIRS)
    refused = procure(args)  # the partial output is not clobbered by a plain rerun
    assert refused.returncode == 2 and "--resume" in refused.stderr and len(refused.stderr.splitlines()) == 1
    resumed = procure([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert out.read_bytes() == mbpp_reference
    assert_one_line_per_pair(out, MBPP_PAIRS)


@pytest.mark.slow
def test_llm_generator_interrupted_then_resumed_gives_the_same_bytes(tmp_path):
    n_problems, answered_before_interrupt = 4, 2
    problems_path = tmp_path / "problems.jsonl"
    write_problems(problems_path, n_problems)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    # if_else_flip has no site in these programs: its rows are written without a request, so an interrupted
    # problem may have one of its two rows written; resuming redoes that problem whole.
    concepts = ["--concepts", "name_random,if_else_flip"]
    gate, lock, answered = threading.Event(), threading.Lock(), [0]

    def script(body):
        with lock:
            answered[0] += 1
            mine = answered[0]
        if mine > answered_before_interrupt:
            gate.wait(60)  # later requests hang until the run is interrupted
        return rename_reply(body)

    with ChatServer(script) as srv:
        args = cli_args(problems_path, out, srv.url, cache) + concepts
        valid_rows = lambda: out.exists() and out.read_text().count('"valid"') >= answered_before_interrupt  # noqa: E731
        result, children = interrupt_when(args, env, valid_rows, signal.SIGINT)
        assert_interrupted(result, out, 2 * n_problems)
        gate.set()
        srv.script = rename_reply
        before = srv.request_count
        resumed = procure([*args, "--resume"], env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert srv.request_count - before == n_problems - answered_before_interrupt  # the rest: from the output
        fresh = tmp_path / "fresh.jsonl"
        rerun = procure(cli_args(problems_path, fresh, srv.url, cache) + concepts, env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert out.read_bytes() == fresh.read_bytes()
    assert_one_line_per_pair(out, 2 * n_problems)


@pytest.mark.parametrize("generator", ["rule", "llm"])
def test_existing_output_is_refused_without_resume_or_overwrite(tmp_path, capsys, monkeypatch, generator):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    problems_path = tmp_path / "problems.jsonl"
    write_problems(problems_path, 1)
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    args = ["perturb", str(problems_path), "--output", str(out), "--concepts", "if_else_flip", "--no-progress"]
    if generator == "llm":
        args += ["--generator", "llm", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--resume" in err and "--overwrite" in err
    assert out.read_text() == "precious\n"
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    # --overwrite replaces it (if_else_flip has no site here: no request is needed)
    assert main([*args, "--overwrite"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [
        (r["concept"], r["status"], r["generator"]) for r in rows
    ] == [("if_else_flip", "not_applicable", generator)]


@pytest.mark.parametrize("generator", ["rule", "llm"])
def test_unwritable_output_fails_before_any_work(generator, tmp_path):
    args = ["perturb", "--benchmark", "mbpp", "--limit", "3", "--output", "/proc/out.jsonl", "--no-progress"]
    if generator == "llm":
        args += ["--generator", "llm", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
    start = time.monotonic()
    result = procure(args, {**os.environ, "OPENAI_API_KEY": "sk-test"})
    elapsed = time.monotonic() - start  # a whole interpreter start included
    assert result.returncode == 2
    assert result.stderr.startswith("procure perturb: error: cannot write the output /proc/out.jsonl: its folder /proc")
    assert result.stderr.count("\n") == 1 and elapsed < 2.0, (elapsed, result.stderr)


def test_output_options_are_refused_with_dataset_mode(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"prompt": "Add.", "completion": "def f(a):\n    b = a + 1\n    return b\n"}) + "\n")
    assert main(["perturb", "--dataset", str(source), "--output-dir", str(tmp_path / "out"), "--resume",
                 "--strict"]) == 2
    assert "--resume, --strict apply to --output OUT.jsonl runs, not to --dataset" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_continues_the_same_run_only(tmp_path, capsys):
    problems_path = tmp_path / "problems.jsonl"
    write_problems(problems_path, 3)
    out = tmp_path / "out.jsonl"
    base = ["perturb", str(problems_path), "--output", str(out), "--no-validate", "--no-progress"]
    assert main([*base, "--limit", "2", "--seed", "1"]) == 0
    made = out.read_bytes()
    capsys.readouterr()

    def refused(extra: list[str]) -> str:
        assert main([*base, "--resume", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--overwrite" in err
        assert out.read_bytes() == made  # nothing lost or added
        return err

    assert "seed 1 then, 2 now" in refused(["--limit", "2", "--seed", "2"])
    assert "limit 2 then, 3 now" in refused(["--limit", "3", "--seed", "1"])
    err = refused(["--limit", "2", "--seed", "1", "--concepts", "name_random"])
    assert "concepts if_else_flip,independent_swap,def_use_break,name_random,name_shuffle then, name_random now" in err
    # another input file; then the same file with other contents
    other = tmp_path / "other.jsonl"
    other.write_bytes(problems_path.read_bytes())
    assert main([*base[:1], str(other), *base[2:], "--resume", "--limit", "2", "--seed", "1"]) == 2
    assert f"input {problems_path} then, {other} now" in capsys.readouterr().err
    original = problems_path.read_text()
    problems_path.write_text(original.replace("return", "return  "))
    assert "problems 2 (sha256:" in refused(["--limit", "2", "--seed", "1"])
    problems_path.write_text(original)
    # the same settings continue it
    assert main([*base, "--resume", "--limit", "2", "--seed", "1"]) == 0
    assert out.read_bytes() == made
    # a file without its record is not continued blindly
    settings = out.with_name(out.name + ".run.json")
    settings.unlink()
    assert "no readable record" in refused(["--limit", "2", "--seed", "1"])
