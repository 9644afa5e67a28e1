"""A model that writes the reference solutions scores what they score, through `procure evaluate`'s own path.

The scripted "model" completes every prompt the harness asks for (the benchmark prompt of an original, the cut
reference and counterfactual programs of a row) with the rest of the program it was cut from, and then keeps
writing, as a model does (a test call, a main block that fails). Sampling, stop strings, program-aware
truncation, execution and scoring are the harness's own: pass@1 on the originals must equal the pass rate of the
reference programs run directly, and CCS must be 1 (both sides of every row pass).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mbpp_data import FIXTURE_MBPP_DIR, requires_full_mbpp

from procure_trl.dataset.prompt_format import decode_request
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.run import cut_rows, evaluate_model
from procure_trl.evaluation.sampling import ScriptedBackend

CODECONTESTS_FIXTURE = Path(__file__).parent / "fixtures" / "code_contests_sample.jsonl"
#: What a model writes after a program: a call (a stop string ends generation there) or, without stop
#: strings, a main block that would fail the run; neither belongs to the program.
TRAILING = "\n\nif __name__ == '__main__':\n    raise SystemExit('not part of the program')\nprint({entry}())\n"


@pytest.fixture
def allow_exec(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _problems(benchmark: str):
    from procure_trl.problems import load_codecontests, load_mbpp, load_problems

    if benchmark == "codecontests":
        return load_codecontests(data_file=CODECONTESTS_FIXTURE)
    if benchmark == "mbpp-fixture":
        return load_mbpp(FIXTURE_MBPP_DIR)
    return load_problems(benchmark)


def _counterfactuals(problems, path: Path) -> Path:
    from procure_trl.perturb.engine import GenerationConfig, generate_to_jsonl

    generate_to_jsonl(problems, path, GenerationConfig(seed=0, num_workers=2, progress=False))
    return path


def _reference_pass_rate(problems) -> float:
    from procure_trl.metrics.functional_correctness import execute_candidates

    results = execute_candidates([[p.program] for p in problems], [p.tests for p in problems], num_workers=2,
                                 timeout=10.0)
    return sum(r[0].passed for r in results) / len(problems)


def _reference_backend(problems, variants, config, prompt_format: str) -> ScriptedBackend:
    """Completes each program start with the rest of the program it was cut from, then trailing code."""
    by_id = {p.task_id: p for p in problems}
    rest: dict[str, tuple[str, str]] = {}  # program start -> (full program, entry point)
    for p in problems:
        rest[p.prompt if prompt_format == "completion" else f"{p.task_id}\0"] = (p.program, p.entry_point)
    rows, _ = cut_rows(variants, by_id, config)
    variant_of = {(v.task_id, v.concept.value): v for v in variants}
    for row in rows:
        variant = variant_of[(row.task_id, row.concept.value)]
        entry = by_id[row.task_id].entry_point
        rest[row.reference_prompt] = (variant.original, entry)
        rest[row.counterfactual_prompt] = (variant.code, entry)

    def complete(prompt: str, sample_index: int) -> str:
        user, prefix = decode_request(prompt)
        if user is not None and not prefix:  # a chat original: the whole program, for the task the user turn names
            task = next(p for p in problems if p.prompt in user)
            program, entry = rest[f"{task.task_id}\0"]
        else:
            program, entry = rest[prefix]
        assert program.startswith(prefix)
        return program[len(prefix):] + TRAILING.format(entry=entry)

    return ScriptedBackend(complete)


#: Stop strings: the defaults (generation ends at the trailing main block), or none (truncation alone ends it).
STOPS = {"default stops": None, "no stops": ()}


def _check_reference_scores(benchmark, tmp_path, prompt_format="completion", n_problems=None, stops=None):
    problems = _problems(benchmark)[:n_problems]
    benchmark = benchmark.removesuffix("-fixture")
    counterfactuals = _counterfactuals(problems, tmp_path / "cf.jsonl")
    extra = {} if stops is None else {"stop_sequences": stops}
    config = EvaluationConfig(model="scripted", benchmark=benchmark, counterfactuals=str(counterfactuals), n=1,
                              k=(1,), temperature=0.0, output_dir=str(tmp_path / "eval"), num_workers=2,
                              timeout=10.0, n_bootstrap=10, prompt_format=prompt_format, **extra)
    from procure_trl.evaluation.counterfactuals import load_counterfactual_variants

    variants = load_counterfactual_variants(str(counterfactuals), {p.task_id: p for p in problems}, benchmark, None)
    backend = _reference_backend(problems, variants, config, prompt_format)
    report = evaluate_model(config, problems=problems, backend=backend)
    assert report.config.prompt_format == prompt_format
    assert report.pass_at_k["original"]["pass@1"] == pytest.approx(_reference_pass_rate(problems))
    assert report.ccs is not None and report.ccs["ccs"] == pytest.approx(1.0)
    for concept in report.pass_at_k["counterfactual"]:
        assert report.pass_at_k["counterfactual"][concept]["pass@1"] == pytest.approx(1.0)
        assert report.pass_at_k["reference"][concept]["pass@1"] == pytest.approx(1.0)
    scored = sum(row["rows"] for row in report.per_concept)
    assert scored > 0
    return report


@pytest.mark.slow
def test_humaneval_reference_programs(tmp_path, allow_exec):
    _check_reference_scores("humaneval", tmp_path)


@pytest.mark.parametrize("stops", STOPS.values(), ids=STOPS.keys())
def test_mbpp_fixture_reference_programs(tmp_path, allow_exec, stops):
    report = _check_reference_scores("mbpp-fixture", tmp_path, stops=stops)
    # code before the entry point's def (globals, imports, helpers) is kept, not cut at its first line
    ahead = [t for t in report.tasks if not t["original"]["completions"][0]["completion"].lstrip().startswith("def ")]
    assert ahead and all(t["original"]["passed"] == [1] for t in ahead)


@pytest.mark.slow
@requires_full_mbpp
def test_mbpp_reference_programs_all_974(tmp_path, allow_exec):
    report = _check_reference_scores("mbpp", tmp_path)
    assert len(report.tasks) == 974
    # MBPP/1 starts with globals before its def: the whole program is kept, and it passes
    mbpp1 = next(t for t in report.tasks if t["task_id"] == "MBPP/1")
    assert mbpp1["original"]["completions"][0]["completion"].startswith("R = 3\nC = 3\ndef min_cost(")
    assert mbpp1["original"]["passed"] == [1]


@pytest.mark.parametrize("stops", STOPS.values(), ids=STOPS.keys())
def test_codecontests_fixture_reference_programs(tmp_path, allow_exec, stops):
    _check_reference_scores("codecontests", tmp_path, stops=stops)


@pytest.mark.slow
def test_humaneval_reference_programs_in_chat_format(tmp_path, allow_exec):
    _check_reference_scores("humaneval", tmp_path, prompt_format="chat", n_problems=60, stops=())
