"""De-duplication and output of ``procure perturb --generator llm`` do not depend on timing.

The loopback endpoint answers every concept of a problem with the same correct renaming, after a
fault (429, 500, malformed body, dropped connection) on the first try of every request, and with random
delays so that pairs finish in a different order on every run. Only the ``name_random`` answer passes
its concept check, so each one must be kept: a candidate is a duplicate only of an *accepted* one. The
rows must be the same bytes for any ``--max-concurrency`` and ``--num-workers``, and a rerun on the cache
must send nothing.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from openai_server import ChatServer, Fault, fenced, task_program  # noqa: E402

from procure_trl.perturb.llm.generator import LLMGenerator, LLMGeneratorConfig
from procure_trl.problems import Problem
from procure_trl.validation import ValidationConfig

N_PROBLEMS = 4


def problem(i: int) -> Problem:
    # An if/else, independent statements and a variable defined twice: every concept has a site, so
    # every concept sends requests (and gets the renaming).
    prompt = f'def split{i}(xs, k):\n    """Sum of the items above k, and how many are not."""\n'
    solution = (
        "    above = 0\n    rest = 0\n    for x in xs:\n        if x > k:\n            above += x\n"
        "        else:\n            rest += 1\n    return above, rest\n"
    )
    tests = f"assert split{i}([1, 5, 7], 4) == (12, 1)\nassert split{i}([], 0) == (0, 0)\n"
    return Problem(f"Dedup/{i}", prompt, solution, tests, f"split{i}")


def renamed(program: str) -> str:
    return program.replace("above", "hi_q7")  # a fresh name: a correct name_random answer


def faulty_renaming_server(seed: int) -> ChatServer:
    """Every distinct request fails once (the fault kinds in turn), then gets the renaming, after a
    random delay (drawn from ``seed``): completion order differs between servers of different seeds."""
    seen: set[str] = set()
    kinds = itertools.cycle([Fault.error(429, retry_after=0.01), Fault.error(500), Fault.malformed(), Fault.drop()])
    lock = threading.Lock()
    jitter = random.Random(seed)

    def script(body: dict):
        key = json.dumps(body["messages"], sort_keys=True)
        with lock:
            fault = next(kinds) if key not in seen else None
            seen.add(key)
            delay = jitter.uniform(0.0, 0.03)
        time.sleep(delay)
        return fault if fault is not None else fenced(renamed(task_program(body)))

    return ChatServer(script)


def generate(problems: list[Problem], out: Path, url: str, cache: Path, concurrency: int, workers: int):
    config = LLMGeneratorConfig(
        model="test-model", base_url=url, cache_dir=str(cache), max_concurrency=concurrency, repair_rounds=1,
        max_retries=4, initial_backoff=0.01, max_backoff=0.05, request_timeout=30.0, show_progress=False,
        validation=ValidationConfig(num_workers=workers),
    )
    return LLMGenerator(config).generate_to_jsonl(problems, None, out)


@pytest.mark.slow
def test_rows_do_not_depend_on_completion_order(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    problems = [problem(i) for i in range(N_PROBLEMS)]
    outputs, requests = {}, {}
    for seed, (name, concurrency, workers) in enumerate([("c16", 16, 2), ("c1", 1, 1)]):
        with faulty_renaming_server(seed) as srv:
            generate(problems, tmp_path / f"{name}.jsonl", srv.url, tmp_path / f"cache-{name}", concurrency, workers)
            requests[name] = srv.request_count
            answers = sum(entry.answer == "text" for entry in srv.log)
        outputs[name] = (tmp_path / f"{name}.jsonl").read_bytes()
        assert requests[name] == 2 * answers  # every request failed once and was retried
    with faulty_renaming_server(2) as srv:  # the same cache: nothing is asked again
        report = generate(problems, tmp_path / "rerun.jsonl", srv.url, tmp_path / "cache-c16", 16, 2)
        assert srv.request_count == 0 and report.stats.requests == 0

    rows = [json.loads(line) for line in outputs["c16"].decode().splitlines()]
    assert len(rows) == N_PROBLEMS * 5
    name_random = [r for r in rows if r["concept"] == "name_random"]
    # every correct name_random answer is kept, though other concepts got (and rejected) the same text
    assert [r["status"] for r in name_random] == ["valid"] * N_PROBLEMS, [r["reason"] for r in name_random]
    assert all(r["code"] == renamed(p.program) for r, p in zip(name_random, problems))
    others = [r for r in rows if r["concept"] != "name_random"]
    assert all(r["status"] != "valid" for r in others)
    assert sum(r["code"] == renamed(r["original"]) for r in others) >= N_PROBLEMS  # same text, rejected
    assert not [r for r in rows if r["stage"] == "duplicate"]
    assert requests["c16"] == requests["c1"]  # the same prompts, repairs included
    assert outputs["c16"] == outputs["c1"] == (tmp_path / "rerun.jsonl").read_bytes()
