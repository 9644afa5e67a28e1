"""LLMGenerator end to end against the loopback server, through the real validation pipeline.

Each scripted conversation answers per (program, concept, repair round), so concurrent pairs get their
own answers whatever order the requests arrive in.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_cli_rows import renamed, scale_problem  # noqa: E402
from openai_server import (  # noqa: E402
    ChatServer,
    Fault,
    Reply,
    fenced,
    repair_round,
    requested_concept,
    task_program,
)

from procure_trl.concepts import Concept
from procure_trl.perturb.llm.client import LLMFatalError
from procure_trl.perturb.llm.generator import LLMConfigError, LLMGenerator, LLMGeneratorConfig, format_llm_summary
from procure_trl.perturb.llm.prompts import NOT_APPLICABLE_MARKER
from procure_trl.perturb.records import CounterfactualRecord, read_records
from procure_trl.problems import Problem

CLAMP_PROMPT = 'import math\n\n\ndef clamp(x, lo, hi):\n    """Clamp x into [lo, hi]; NaN stays NaN."""\n'
CLAMP_SOLUTION = "    if x < lo:\n        result = lo\n    else:\n        result = min(x, hi)\n    return result\n"
CLAMP_TESTS = (
    "assert clamp(5, 0, 3) == 3\nassert clamp(-1, 0, 3) == 0\nassert clamp(2, 0, 3) == 2\n"
    "assert math.isnan(clamp(float('nan'), 0, 3))\n"
)
CLAMP = Problem("Test/clamp", CLAMP_PROMPT, CLAMP_SOLUTION, CLAMP_TESTS, "clamp")

FLIP_OK = CLAMP.program.replace(
    "    if x < lo:\n        result = lo\n    else:\n        result = min(x, hi)\n",
    "    if not (x < lo):\n        result = min(x, hi)\n    else:\n        result = lo\n",
)
# Accepted as a negation by a concept check, but wrong for NaN: only the tests can catch it.
FLIP_NAN_BUG = FLIP_OK.replace("if not (x < lo):", "if x >= lo:")
FLIP_SYNTAX_ERROR = FLIP_OK.replace("if not (x < lo):", "if not (x < lo)")
RENAME_OK = CLAMP.program.replace("result", "v_q7")


def script_from(replies: dict):
    """replies[(program, concept)] = [answer of round 0, answer of round 1, ...]."""

    def script(body):
        answers = replies[(task_program(body), requested_concept(body))]
        return answers[min(repair_round(body), len(answers) - 1)]

    return script


@pytest.fixture
def config_factory(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    def make(server_url: str, **overrides) -> LLMGeneratorConfig:
        kwargs = dict(
            model="test-model",
            base_url=server_url,
            request_timeout=2.0,  # the injected hang (5 s) outlasts it; normal answers never come near it
            max_retries=4,
            initial_backoff=0.01,
            max_backoff=0.5,
            max_concurrency=3,
            repair_rounds=2,
            cache_dir=str(tmp_path / "cache"),
            show_progress=False,
        )
        kwargs.update(overrides)
        return LLMGeneratorConfig(**kwargs)

    return make


def one_row(rows, concept):
    matching = [r for r in rows if r.concept == concept.value]
    assert len(matching) == 1
    return matching[0]


def test_valid_first_answer(config_factory):
    replies = {(CLAMP.program, "if_else_flip"): [fenced(FLIP_OK)]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url)).generate([CLAMP], [Concept.IF_ELSE_FLIP])
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "valid", row.reason
    assert row.code == FLIP_OK and row.original == CLAMP.program and row.attempts == 1
    assert row.usage["prompt_tokens"] > 0 and row.usage["completion_tokens"] > 0
    texts = "".join(FLIP_OK[s:e] for s, e in row.changed_spans)
    assert "not" in texts and "lo" in texts


@pytest.mark.parametrize(
    "first_answer, reason_sent_back",
    [
        (fenced(FLIP_SYNTAX_ERROR), "parse"),  # a syntax error fixed on repair
        (fenced(RENAME_OK), "if_else_flip"),  # the wrong concept
        (fenced(FLIP_NAN_BUG), "tests failed"),  # a semantic change the tests catch
        ("Here is the program: def clamp(x, lo, hi): ...", "no ```python"),  # no code block
    ],
    ids=["syntax-error", "wrong-concept", "semantic-change", "no-code-block"],
)
def test_rejection_is_repaired_with_the_reason_sent_back(config_factory, first_answer, reason_sent_back):
    replies = {(CLAMP.program, "if_else_flip"): [first_answer, fenced(FLIP_OK)]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url)).generate([CLAMP], [Concept.IF_ELSE_FLIP])
        repair_request = srv.log[1].body
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "valid", row.reason
    assert row.attempts == 2
    repair_text = repair_request["messages"][-1]["content"]
    assert reason_sent_back.lower() in repair_text.lower(), repair_text
    assert repair_request["messages"][-2] == {"role": "assistant", "content": first_answer}


def test_rejected_after_all_repair_rounds(config_factory):
    replies = {(CLAMP.program, "if_else_flip"): [fenced(FLIP_NAN_BUG)]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url, repair_rounds=2)).generate([CLAMP], [Concept.IF_ELSE_FLIP])
        assert srv.request_count == 3
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "rejected" and row.attempts == 3
    assert row.reason.startswith("rejected after 3 attempt(s)")
    assert row.code == FLIP_NAN_BUG  # the last candidate is kept for inspection


def test_model_not_applicable_claim(config_factory):
    replies = {(CLAMP.program, "if_else_flip"): [f"I would rather not.\n{NOT_APPLICABLE_MARKER} none"]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url)).generate([CLAMP], ["if_else_flip"])
        assert srv.request_count == 1
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "not_applicable" and row.code is None and row.reason == "model: none"


def test_no_site_in_the_facts_costs_no_request(config_factory):
    problem = scale_problem(0)  # a loop, no if/else: the analysis finds no site to flip
    with ChatServer() as srv:
        rows = LLMGenerator(config_factory(srv.url)).generate([problem], ["if_else_flip"])
        assert srv.request_count == 0
        asked = LLMGenerator(config_factory(srv.url, skip_without_site=False)).generate([problem], ["if_else_flip"])
        assert srv.request_count == 3  # the echo script repeats the original: rejected, then 2 repairs
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "not_applicable" and row.attempts == 0 and "no if_else_flip site" in row.reason
    assert one_row(asked, Concept.IF_ELSE_FLIP).status == "rejected"


def test_faults_then_cached_rerun_sends_zero_requests(config_factory, tmp_path):
    problems = [scale_problem(i) for i in range(4)]
    replies = {(p.program, "name_random"): [fenced(renamed(p.program))] for p in problems}
    with ChatServer(script_from(replies)) as srv:
        srv.inject(Fault.error(429, retry_after=0.05), Fault.error(500), Fault.hang(5.0), Fault.malformed(),
                   Fault.drop())
        config = config_factory(srv.url)
        out = tmp_path / "out.jsonl"
        report = LLMGenerator(config).generate_to_jsonl(problems, ["name_random"], out)
        first_count = srv.request_count
        assert first_count == 4 + 5  # one answer per pair, one retry per fault
        assert report.stats.retries == 5 and report.stats.requests == first_count

        again = tmp_path / "again.jsonl"
        report2 = LLMGenerator(config).generate_to_jsonl(problems, ["name_random"], again)
        assert srv.request_count == first_count  # the cache answered everything
        assert report2.stats.requests == 0 and report2.stats.cache_hits == 4
        rows = read_records(out)
    assert [r.task_id for r in rows] == [p.task_id for p in problems]  # input order, once each
    assert all(r.status == "valid" and r.stage == "passed" for r in rows), [r.reason for r in rows]
    assert all(r.generator == "llm" and r.attempts == 1 for r in rows)
    assert out.read_bytes() == again.read_bytes()  # identical rows, usage included


def test_unreachable_endpoint_stops_the_run_at_once(config_factory, tmp_path):
    with ChatServer() as srv:
        url = srv.url  # closed on exit: connections are refused
    started = time.monotonic()
    with pytest.raises(LLMFatalError, match=f"endpoint {url} .*cannot be reached: connection refused"):
        LLMGenerator(config_factory(url, initial_backoff=1.0, max_backoff=5.0, use_cache=False)).generate_to_jsonl(
            [CLAMP, scale_problem(0)], ["name_random"], tmp_path / "o.jsonl")
    assert time.monotonic() - started < 10  # no retries with backoff on a wrong URL


def test_endpoint_errors_are_not_done_and_resume_asks_again(config_factory, tmp_path):
    problems = [scale_problem(i) for i in range(3)]
    replies = {(p.program, "name_random"): [fenced(renamed(p.program))] for p in problems}
    answer = script_from(replies)
    failing = {problems[1].program}  # this problem's requests fail, retries included

    def script(body):
        return Fault.error(503) if task_program(body) in failing else answer(body)

    out = tmp_path / "out.jsonl"
    with ChatServer(script) as srv:
        config = config_factory(srv.url, max_retries=2)
        report = LLMGenerator(config).generate_to_jsonl(problems, ["name_random"], out)
        assert report.endpoint_errors == 1 and srv.request_count == 2 + 3
        bad = [r for r in report.rows if r.stage == "endpoint"]
        assert [r.task_id for r in bad] == [problems[1].task_id] and "503" in bad[0].reason
        summary = format_llm_summary(report)
        assert summary.startswith("endpoint errors: 1 of 3 pairs"), summary

        failing.clear()
        before = srv.request_count
        resumed = LLMGenerator(config).generate_to_jsonl(problems, ["name_random"], out, resume=True)
        assert srv.request_count - before == 1  # only the pair that had failed
    assert resumed.endpoint_errors == 0 and resumed.resumed_rows == 2 and resumed.new_rows == 1
    rows = read_records(out)
    assert [r.task_id for r in rows] == [p.task_id for p in problems]  # the failed row was replaced
    assert all(r.status == "valid" for r in rows), [r.reason for r in rows]
    assert "endpoint errors" not in format_llm_summary(resumed)


def test_bad_key_stops_the_run(config_factory, tmp_path):
    with ChatServer() as srv:
        srv.inject(*[Fault.error(401)] * 5)
        with pytest.raises(LLMFatalError, match="401"):
            LLMGenerator(config_factory(srv.url)).generate_to_jsonl([CLAMP], ["name_random"], tmp_path / "o.jsonl")


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="MY_KEY"):
        LLMGenerator(LLMGeneratorConfig(model="m", api_key_env="MY_KEY"))


def test_unknown_concept_is_refused_before_any_work(config_factory, tmp_path):
    with ChatServer() as srv:
        gen = LLMGenerator(config_factory(srv.url))
        with pytest.raises(ValueError, match="unknown concept 'loop_unroll'"):
            gen.generate_to_jsonl([CLAMP], ["loop_unroll"], tmp_path / "o.jsonl")
        assert srv.request_count == 0
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("field, value", [("repair_rounds", -1), ("max_concurrency", 0), ("temperature", 3.0)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(LLMConfigError, match=field):
        LLMGeneratorConfig(model="m", **{field: value})


def test_summary_reports_rounds_usage_and_cost(config_factory, tmp_path):
    problems = [CLAMP]
    replies = {
        (CLAMP.program, "if_else_flip"): [fenced(FLIP_SYNTAX_ERROR), fenced(FLIP_OK)],
        (CLAMP.program, "name_random"): [fenced(RENAME_OK)],
    }
    with ChatServer(script_from(replies)) as srv:
        cfg = config_factory(srv.url, prices={"test-model": (1.0, 2.0)})
        report = LLMGenerator(cfg).generate_to_jsonl(problems, ["if_else_flip", "name_random"], tmp_path / "o.jsonl")
    text = format_llm_summary(report)
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    # columns: concept pairs valid n/a rejected bad-input valid% <=r0 <=r1 <=r2
    assert lines["if_else_flip"][1:] == ["1", "1", "0", "0", "0", "100.0", "0.0", "100.0", "100.0"]
    assert lines["name_random"][1:] == ["1", "1", "0", "0", "0", "100.0", "100.0", "100.0", "100.0"]
    assert lines["total"][1:8] == ["2", "2", "0", "0", "0", "100.0", "50.0"]
    billed = report.stats.billed
    expected = (billed.prompt_tokens * 1.0 + billed.completion_tokens * 2.0) / 1e6
    assert f"${expected:.4f}" in text
    assert "rejected by stage" not in text  # nothing was rejected
    report.price = None
    report.rows.append(CounterfactualRecord("t", "name_random", "rejected", stage="concept", attempts=3))
    text = format_llm_summary(report)
    assert "no price for model 'test-model'" in text and "rejected by stage: concept 1" in text


def test_sync_api_inside_a_running_loop_points_to_the_async_one(config_factory):
    import asyncio

    async def inside():
        with ChatServer() as srv:
            gen = LLMGenerator(config_factory(srv.url))
            with pytest.raises(RuntimeError, match="agenerate"):
                gen.generate([CLAMP], ["name_random"])
            replies = {(CLAMP.program, "name_random"): [fenced(RENAME_OK)]}
            srv.script = script_from(replies)
            return await gen.agenerate([CLAMP], ["name_random"])

    rows = asyncio.run(inside())
    assert rows[0].status == "valid", rows[0].reason


def test_answer_cut_at_the_token_limit_is_repaired_with_that_reason(config_factory):
    cut = Reply("Step 1: ...\n```python\nimport math\n\n\ndef clamp(x, lo", finish_reason="length")
    replies = {(CLAMP.program, "if_else_flip"): [cut, fenced(FLIP_OK)]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url, max_tokens=64)).generate([CLAMP], ["if_else_flip"])
        repair_text = srv.log[1].body["messages"][-1]["content"]
    assert "cut off at the token limit (max_tokens=64)" in repair_text
    assert one_row(rows, Concept.IF_ELSE_FLIP).status == "valid"


def test_resume_refuses_a_rule_engine_file(config_factory, tmp_path):
    out = tmp_path / "rule.jsonl"
    out.write_text(json.dumps({"task_id": CLAMP.task_id, "concept": "name_random", "status": "not_applicable",
                               "original": CLAMP.program, "generator": "rule"}) + "\n")
    with ChatServer() as srv:
        with pytest.raises(ValueError, match="--generator rule"):
            LLMGenerator(config_factory(srv.url)).generate_to_jsonl([CLAMP], ["if_else_flip"], out, resume=True)


def test_broken_problem_is_not_repaired(config_factory):
    broken = Problem("Test/broken", CLAMP_PROMPT, CLAMP_SOLUTION, "assert clamp(5, 0, 3) == 4\n", "clamp")
    replies = {(broken.program, "if_else_flip"): [fenced(FLIP_OK)]}
    with ChatServer(script_from(replies)) as srv:
        rows = LLMGenerator(config_factory(srv.url)).generate([broken], ["if_else_flip"])
        assert srv.request_count == 1  # repairing cannot help when the reference fails its tests
    row = one_row(rows, Concept.IF_ELSE_FLIP)
    assert row.status == "rejected" and row.stage == "original" and "original program fails" in row.reason


def test_rows_are_accepted_by_the_dataset_builder(config_factory, tmp_path):
    from procure_trl.dataset.rows import build_rows

    replies = {
        (CLAMP.program, "if_else_flip"): [fenced(FLIP_OK)],
        (CLAMP.program, "name_random"): [fenced(RENAME_OK)],
        (CLAMP.program, "def_use_break"): ["NOT_APPLICABLE: no"],
    }
    out = tmp_path / "o.jsonl"
    with ChatServer(script_from(replies)) as srv:
        LLMGenerator(config_factory(srv.url, skip_without_site=False)).generate_to_jsonl(
            [CLAMP], ["if_else_flip", "name_random", "def_use_break"], out
        )
    rows = build_rows(read_records(out), {CLAMP.task_id: CLAMP_PROMPT})
    assert [r["concept"] for r in rows] == ["original", "if_else_flip", "name_random"]
    for r in rows[1:]:
        assert r["changed_spans"] and all(r["completion"][s:e].strip() for s, e in r["changed_spans"])


def test_all_ast_work_of_a_run_happens_on_one_thread(config_factory):
    """Static analysis for prompts and validation share one thread: CPython 3.11's AST constructor fails
    ("AST constructor recursion depth mismatch") when two threads build ASTs at once."""
    import threading

    from procure_trl.perturb.llm.prompts import default_facts
    from procure_trl.validation import Validator

    threads: set[str] = set()

    def facts_fn(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return default_facts(*args, **kwargs)

    class RecordingValidator(Validator):
        def validate_one(self, *args, **kwargs):
            threads.add(threading.current_thread().name)
            return super().validate_one(*args, **kwargs)

    problems = [scale_problem(i) for i in range(3)]
    replies = {(p.program, "name_random"): [fenced(renamed(p.program))] for p in problems}
    with ChatServer(script_from(replies)) as srv:
        config = config_factory(srv.url)
        generator = LLMGenerator(config, facts_fn=facts_fn, validator=RecordingValidator(config.validation))
        rows = generator.generate(problems, [Concept.NAME_RANDOM])
    assert [r.status for r in rows] == ["valid"] * 3, [r.reason for r in rows]
    assert len(threads) == 1 and threading.main_thread().name not in threads, threads
