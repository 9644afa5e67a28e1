"""``procure perturb --generator llm``: a run killed with SIGKILL and resumed, and the CLI's errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_cli_rows import cli_args, rename_reply, scale_problem, write_problems  # noqa: E402
from openai_server import ChatServer, Fault  # noqa: E402

from procure_trl.cli import main

REPO = Path(__file__).resolve().parents[1]


def complete_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_text()
    return [json.loads(line) for line in data[: data.rfind("\n") + 1].splitlines()]


def run_cli_subprocess(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "procure_trl.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_duplicating_pairs(tmp_path):
    n_pairs, answered_before_kill = 6, 3
    problems = write_problems(tmp_path / "problems.jsonl", n_pairs)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    gate = threading.Event()
    answered = {"n": 0}
    lock = threading.Lock()

    def script(body):
        with lock:
            answered["n"] += 1
            mine = answered["n"]
        if mine > answered_before_kill:
            gate.wait(60)  # requests past the first few hang until the run is killed
        return rename_reply(body)

    with ChatServer(script) as srv:
        # faults first, then the kill: still exactly one row per pair at the end
        srv.inject(Fault.error(429, retry_after=0.1), Fault.drop(), Fault.malformed())
        args = cli_args(tmp_path / "problems.jsonl", out, srv.url, cache)
        proc = subprocess.Popen([sys.executable, "-m", "procure_trl.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while len(complete_rows(out)) < answered_before_kill:
                assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "the run wrote no rows in time"
                time.sleep(0.05)
            time.sleep(0.2)  # the remaining workers are now waiting on hung requests
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        killed_rows = complete_rows(out)
        assert proc.returncode == -signal.SIGKILL
        assert len(killed_rows) == answered_before_kill
        # no corrupt cache entry after the kill: every entry parses
        for entry in cache.rglob("*.json"):
            json.loads(entry.read_text())

        gate.set()
        srv.script = rename_reply
        before = srv.request_count
        resumed = run_cli_subprocess(args + ["--resume"], env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        # only the pairs that were not done are asked again; the answered ones were never lost
        assert srv.request_count - before == n_pairs - answered_before_kill

        before = srv.request_count
        fresh_out = tmp_path / "again.jsonl"
        rerun = run_cli_subprocess(cli_args(tmp_path / "problems.jsonl", fresh_out, srv.url, cache), env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert srv.request_count == before  # the cache answered every request
        assert "requests sent: 0" in rerun.stdout

    rows = complete_rows(out)
    assert [r["task_id"] for r in rows] == [p.task_id for p in problems]  # each pair exactly once
    assert all(r["status"] == "valid" for r in rows), [r["reason"] for r in rows]
    assert out.read_bytes() == fresh_out.read_bytes()
    assert "valid%" in resumed.stdout and "<=r3" in resumed.stdout


@pytest.fixture
def problems_file(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 1)
    return tmp_path / "problems.jsonl"


def test_missing_api_key_names_the_variable(problems_file, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PROCURE_TEST_KEY", raising=False)
    args = cli_args(problems_file, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", tmp_path / "c",
                    "--api-key-env", "PROCURE_TEST_KEY")
    assert main(args) == 2
    assert "PROCURE_TEST_KEY is not set" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_model_and_existing_output(problems_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    args = cli_args(problems_file, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", tmp_path / "c")
    no_model = [a for a in args if a not in ("--model", "test-model")]
    assert main(no_model) == 2
    assert "--model" in capsys.readouterr().err
    (tmp_path / "o.jsonl").write_text('{"task_id": "x", "concept": "name_random"}\n')
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err


def test_unknown_concept_is_a_usage_error(problems_file, tmp_path, capsys):
    args = cli_args(problems_file, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", tmp_path / "c")
    args[args.index("name_random")] = "loop_unroll"
    assert main(args) == 2  # checked after parsing: a name that is not built in may come from --concept-rules
    err = capsys.readouterr().err
    assert "unknown concept 'loop_unroll'" in err and err.count("\n") == 1


def test_unreachable_endpoint_stops_within_seconds_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    with ChatServer() as srv:
        url = srv.url  # closed on exit: nothing listens there any more
    args = ["perturb", "--benchmark", "humaneval", "--limit", "3", "--generator", "llm", "--model", "m",
            "--base-url", url, "--output", str(tmp_path / "x.jsonl"), "--cache-dir", str(tmp_path / "c"),
            "--no-progress"]
    started = time.monotonic()
    assert main(args) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("procure perturb: error: endpoint " + url), err
    assert "connection refused" in err


def test_endpoint_errors_exit_non_zero_unless_allowed(problems_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "o.jsonl"
    with ChatServer(lambda body: Fault.error(500)) as srv:  # reachable, but every answer is a 500
        args = cli_args(problems_file, out, srv.url, tmp_path / "c", "--max-retries", "1")
        assert main(args) == 1
        captured = capsys.readouterr()
        assert captured.out.startswith("endpoint errors: 1 of 1 pairs"), captured.out
        assert "--resume" in captured.err and "--allow-endpoint-errors" in captured.err
        assert main(args + ["--resume", "--allow-endpoint-errors"]) == 0  # asked again, failed again, allowed
        assert srv.request_count == 4
        srv.script = rename_reply
        assert main(args + ["--resume"]) == 0
        assert srv.request_count == 5
    rows = complete_rows(out)
    assert len(rows) == 1 and rows[0]["status"] == "valid"


def test_rejected_key_stops_with_a_clear_error_and_keeps_rows(problems_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with ChatServer() as srv:
        srv.inject(*[Fault.error(401)] * 4)
        args = cli_args(problems_file, tmp_path / "o.jsonl", srv.url, tmp_path / "c")
        assert main(args) == 1
        assert srv.request_count == 1  # not retried: every request would fail the same way
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "401" in err and "API key was rejected" in err and srv.url in err


def test_adding_the_llm_options_does_not_import_openai():
    # `procure perturb` always imports the LLM options module; the rule path must stay light.
    code = "import sys, procure_trl.commands.perturb_llm; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_bad_input_rows_are_reported_as_rejected_rows_without_requests(tmp_path, monkeypatch):
    # Same contract as the rule engine: one line per (row, concept), the bad row named, the batch goes on.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    problems_path = tmp_path / "problems.jsonl"
    good = scale_problem(0)
    problems_path.write_text(json.dumps(good.to_dict()) + "\n" + '{"task_id": "Bad/1", "prompt": "x"}\n' + "not json\n")
    out = tmp_path / "o.jsonl"
    with ChatServer(rename_reply) as srv:
        assert main(cli_args(problems_path, out, srv.url, tmp_path / "c")) == 0
        assert srv.request_count >= 1
        requests_first = srv.request_count
        # resuming a finished run adds nothing and sends nothing
        assert main(cli_args(problems_path, out, srv.url, tmp_path / "c", "--resume")) == 0
        assert srv.request_count == requests_first
    rows = complete_rows(out)
    assert [r["task_id"] for r in rows] == [good.task_id, "Bad/1", f"{problems_path}:3"]
    assert rows[0]["status"] == "valid"
    for bad in rows[1:]:
        assert bad["status"] == "rejected" and bad["stage"] == "input" and bad["generator"] == "llm"
        assert bad["attempts"] == 0
    assert "missing field(s) solution" in rows[1]["reason"]
    assert "not valid JSON" in rows[2]["reason"]
