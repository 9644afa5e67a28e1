"""Per-problem bounds of the rule engine: no row can sink a run (size, analysis time and memory, bad bytes)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturb.bounded import BoundedPerturber, OverLimit
from procure_trl.perturb.engine import GenerationConfig, bad_input_rows, generate_counterfactuals
from procure_trl.problems import InvalidProblem, Problem, read_jsonl
from procure_trl.statuses import Stage

ORDINARY = Problem("ok/add", "def add(a, b):\n", "    s = a + b\n    t = 0\n    return s + t\n",
                   "assert add(1, 2) == 3\n", "add")


def _straight_line(n: int, name: str = "longf") -> Problem:
    """A function of ``n`` statements: independent constants alternating with dependent ones."""
    body = "".join(f"    v{i} = {i}\n" if i % 2 == 0 else f"    v{i} = v{i - 1} + 1\n" for i in range(n))
    return Problem(
        f"long/{n}", "", f"def {name}():\n{body}    return v{n - 1}\n", f"assert {name}() == {n - 1}\n", name
    )


def _huge(megabytes: float) -> Problem:
    lines = int(megabytes * 1e6 / 24)
    body = "".join(f"    v{i} = x + {i}\n" for i in range(lines))
    return Problem("big/huge", "", f"def big(x):\n{body}    return x\n", "assert big(1) == 1\n", "big")


def _config(**kw) -> GenerationConfig:
    return GenerationConfig(progress=False, validate=False, num_workers=1, **kw)


def test_a_program_over_the_size_limit_is_a_bad_input_row_and_the_run_goes_on():
    big = _straight_line(400)
    size_kb = len(big.program.encode()) / 1000
    records = generate_counterfactuals([big, ORDINARY], _config(max_source_kb=int(size_kb) - 1))
    bad = bad_input_rows(records)
    assert [r.task_id for r in bad] == [big.task_id]
    assert "--max-source-kb" in bad[0].reason and f"{size_kb:,.0f} kB" in bad[0].reason
    assert {r.concept for r in records if r.task_id == ORDINARY.task_id} == set(Concept)
    assert any(r.code for r in records if r.task_id == ORDINARY.task_id)
    # the same program within the limit is analysed
    records = generate_counterfactuals([big], _config(max_source_kb=int(size_kb) + 1))
    assert not bad_input_rows(records)


def test_an_analysis_over_the_time_limit_is_a_bad_input_row_and_the_next_problem_is_analysed():
    slow = _straight_line(2000)
    records = generate_counterfactuals([slow, ORDINARY], _config(analysis_timeout=0.05))
    bad = bad_input_rows(records)
    assert [r.task_id for r in bad] == [slow.task_id]
    assert "longer than 0.05 s" in bad[0].reason and "--analysis-timeout" in bad[0].reason
    assert all(r.stage != Stage.INPUT for r in records if r.task_id == ORDINARY.task_id)


def test_an_analysis_over_the_memory_limit_is_reported_and_the_worker_replaced():
    perturber = BoundedPerturber(memory_mb=300)
    config = _config()
    job = {"source": _huge(2.5).program, "task_id": "big", "concepts": [Concept.NAME_RANDOM], "config": config,
           "protected": ("big",)}
    try:
        with pytest.raises(OverLimit, match="more than 300 MiB"):
            perturber.run(job, timeout=60)
        small = {**job, "source": "def f(a):\n    b = a\n    return b\n", "protected": ("f",)}
        (outcome,) = perturber.run(small, timeout=30)
        assert outcome.error is None and outcome.results[0].applied
    finally:
        perturber.close()


def test_undecodable_bytes_are_reported_per_row_with_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    good = json.dumps(ORDINARY.to_dict()).encode()
    path.write_bytes(good.replace(b"ok/add", b"ok/1") + b"\n"
                     + b'{"task_id": "x", "prompt": "def f():\\n", "solution": "  return \'\xff\'\\n"}\n'
                     + good.replace(b"ok/add", b"ok/3") + b"\n")
    rows = read_jsonl(path)
    assert [type(r) for r in rows] == [Problem, InvalidProblem, Problem]
    assert rows[1].reason.startswith(f"{path}:2: not UTF-8 (byte 0xff at column ")


@pytest.mark.slow
def test_a_5mb_program_and_a_2000_statement_function_beside_ordinary_rows(tmp_path):
    rows = [ORDINARY.to_dict(), _huge(5).to_dict(), _straight_line(2000).to_dict(),
            {**ORDINARY.to_dict(), "task_id": "ok/again"}]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "procure_trl.cli", "perturb", str(source), "--output", str(out),
                           "--num-workers", "1", "--no-progress"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    # the largest single process of the run (the command and its workers), in kB on Linux
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < 60 and peak_mb < 2048, (elapsed, peak_mb)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_task: dict[str, list[dict]] = {}
    for line in lines:
        by_task.setdefault(line["task_id"], []).append(line)
    assert set(by_task) == {"ok/add", "big/huge", "long/2000", "ok/again"}
    assert all(r["stage"] == "input" and "--max-source-kb" in r["reason"] for r in by_task["big/huge"])
    swap = next(r for r in by_task["long/2000"] if r["concept"] == "independent_swap")
    assert swap["status"] == "valid", swap["reason"]
    assert "big/huge" in done.stdout and "bad input: 1 row(s)" in done.stdout
