"""``procure evaluate --task repair|detect`` through ``evaluate_model`` with scripted backends whose true scores are
known: a repairer that returns the unmutated program, one that returns the bug, and detectors that judge by fixed
rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mutant_rows import BODY, DOCSTRING, SIGNATURE, TESTS

from procure_trl.concepts import Concept
from procure_trl.dataset.prompt_format import TaskText
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.downstream import DETECT_ANSWERS, repair_prompt
from procure_trl.evaluation.run import evaluate_model
from procure_trl.evaluation.sampling import ScriptedBackend
from procure_trl.perturb.mutate import MutationConfig, generate_mutants, killed_pairs
from procure_trl.perturb.records import CounterfactualRecord, write_records
from procure_trl.perturbations import perturb
from procure_trl.problems import Problem
from procure_trl.statuses import VALID, Stage

PROMPT, SOLUTION = SIGNATURE + DOCSTRING, BODY
PROBLEM = Problem("Toy/0", PROMPT, SOLUTION, TESTS, "clip_sum")


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    rows = []
    for concept in Concept:
        cf = perturb(PROBLEM.program, concept, seed=0, protected_names=("clip_sum",))
        rows.append(CounterfactualRecord(PROBLEM.task_id, concept, VALID, original=PROBLEM.program, code=cf.code,
                                         changed_spans=cf.changed_spans, stage=Stage.PASSED, sites=cf.sites))
    lines = generate_mutants(rows, {PROBLEM.task_id: PROBLEM}, MutationConfig(num_workers=1, progress=False))
    path = tmp_path_factory.mktemp("mutants") / "mutants.jsonl"
    write_records(lines, path)
    pairs = killed_pairs(lines)
    assert len(pairs) >= 5
    return path, pairs


def config(tmp_path, path, task, **kw) -> EvaluationConfig:
    return EvaluationConfig(model="scripted", task=task, mutants=str(path), output_dir=str(tmp_path / task), n=1,
                            k=(1,), temperature=0.0, prompt_format="completion", num_workers=1, **kw)


def statement() -> str:
    return TaskText.from_problem(PROBLEM).statement


def repairer(pairs, fixed: bool) -> ScriptedBackend:
    answers = {}
    for o, c in pairs:
        for mutant, source in ((o, o.original), (c, o.counterfactual)):
            answers[repair_prompt("completion", statement(), mutant.code)] = source if fixed else mutant.code
    return ScriptedBackend(lambda prompt, index: answers[prompt])


def test_repair_of_the_unmutated_program_scores_one(tmp_path, mutants, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, pairs = mutants
    report = evaluate_model(config(tmp_path, path, "repair"), problems=[PROBLEM], backend=repairer(pairs, True))
    assert report.metrics["repair_pass@1"] == 1.0 and report.metrics["consistency"] == 1.0
    assert report.metrics["pairs"] == len(pairs)
    assert all(entry["repair_pass@1"] == 1.0 for entry in report.per_group.values())
    saved = json.loads((tmp_path / "repair" / "report.json").read_text())
    assert saved["task"] == "repair" and saved["metrics"]["repair_pass@1"] == 1.0


def test_repair_that_returns_the_bug_scores_zero(tmp_path, mutants, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, pairs = mutants
    report = evaluate_model(config(tmp_path, path, "repair"), problems=[PROBLEM], backend=repairer(pairs, False))
    assert report.metrics["repair_pass@1"] == 0.0
    assert {c.value for c in Concept} <= set(report.per_group)


def _detector(rule) -> ScriptedBackend:
    """Log-likelihood 0 for the answer ``rule(prompt)`` gives (True: buggy), -1 for the other."""
    def score(prompt: str, answer: str) -> float:
        return 0.0 if (answer.strip() == DETECT_ANSWERS[1]) == rule(prompt) else -1.0
    return ScriptedBackend({}, scorer=score)


def test_detector_by_a_fixed_rule_gives_the_accuracy_computed_by_hand(tmp_path, mutants, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, pairs = mutants
    rule = lambda program: "<=" in program or "+ 0" in program  # noqa: E731 -- calls a program buggy by its text
    report = evaluate_model(config(tmp_path, path, "detect"), problems=[PROBLEM], backend=_detector(rule))
    right = alike = 0
    for o, c in pairs:
        programs = [(o.original, False), (o.counterfactual, False), (o.code, True), (c.code, True)]
        judged = [rule(text) for text, _ in programs]
        right += sum(j == bug for j, (_, bug) in zip(judged, programs))
        alike += (judged[0] == judged[1]) + (judged[2] == judged[3])
    assert report.metrics["accuracy"] == pytest.approx(right / (4 * len(pairs)))
    assert report.metrics["consistency"] == pytest.approx(alike / (2 * len(pairs)))
    assert 0 < report.metrics["accuracy"] < 1  # the rule is neither always right nor always wrong here


def test_a_detector_that_knows_the_bugs_is_perfect_and_one_that_always_says_correct_is_half(tmp_path, mutants,
                                                                                            monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, pairs = mutants
    bugs = {m.code for pair in pairs for m in pair}
    oracle = evaluate_model(config(tmp_path, path, "detect"), problems=[PROBLEM],
                            backend=_detector(lambda prompt: any(b.rstrip() + "\n\n# Is" in prompt for b in bugs)))
    assert oracle.metrics["accuracy"] == 1.0 and oracle.metrics["consistency"] == 1.0
    always = evaluate_model(config(tmp_path, path, "detect"), problems=[PROBLEM], backend=_detector(lambda p: False))
    assert always.metrics["accuracy"] == 0.5 and always.metrics["consistency"] == 1.0


def test_repair_and_detect_need_a_mutants_file(tmp_path):
    with pytest.raises(ValueError, match="--mutants"):
        EvaluationConfig(model="m", task="repair", output_dir=str(tmp_path))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, mutants):
    """A dataset built from the toy counterfactuals and their mutants, every task in ``test``."""
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.perturb.records import read_records
    from procure_trl.problems import write_jsonl

    path, _ = mutants
    folder = tmp_path_factory.mktemp("dataset")
    problems = folder / "problems.jsonl"
    write_jsonl([PROBLEM], problems)
    counterfactuals = folder / "cf.jsonl"
    rows = {}
    for line in read_records(path):  # the counterfactual rows the mutants were made from
        rows.setdefault(line.key[:2], CounterfactualRecord(
            line.task_id, line.concept, VALID, original=line.original, code=line.counterfactual, stage=Stage.PASSED,
            changed_spans=_spans(line.original, line.counterfactual)))
    write_records(list(rows.values()), counterfactuals)
    out = folder / "built"
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(counterfactuals), benchmarks="humaneval",
                                             problems=str(problems), output_dir=str(out), test_size=1.0,
                                             mutants=str(path)))
    return out


def _spans(original: str, code: str) -> list[list[int]]:
    """One span over the part of ``code`` that differs from ``original`` (common prefix and suffix left out)."""
    start = 0
    while start < min(len(original), len(code)) and original[start] == code[start]:
        start += 1
    end = 0
    while end < min(len(original), len(code)) - start and original[-1 - end] == code[-1 - end]:
        end += 1
    return [[start, len(code) - end]]


def dataset_config(tmp_path, folder, task, name="", **kw) -> EvaluationConfig:
    """A run of ``task`` on ``folder``'s test split; ``name`` gives it a folder (and completion cache) of its own."""
    return EvaluationConfig(model="scripted", task=task, dataset=str(folder), output_dir=str(tmp_path / (task + name)),
                            n=1,
                            k=(1,), temperature=0.0, prompt_format="completion", num_workers=1, **kw)


def test_repair_and_detect_from_the_test_split_of_a_dataset(tmp_path, mutants, dataset, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    _, pairs = mutants
    config = dataset_config(tmp_path, dataset, "repair")
    assert config.split == "test"
    report = evaluate_model(config, problems=[PROBLEM], backend=repairer(pairs, True))
    assert report.metrics["repair_pass@1"] == 1.0 and report.metrics["pairs"] == len(pairs)
    broken = evaluate_model(dataset_config(tmp_path, dataset, "repair", "-broken"), problems=[PROBLEM],
                            backend=repairer(pairs, False))
    assert broken.metrics["repair_pass@1"] == 0.0
    always = evaluate_model(dataset_config(tmp_path, dataset, "detect"), problems=[PROBLEM],
                            backend=_detector(lambda p: False))
    assert always.metrics["accuracy"] == 0.5 and always.metrics["pairs"] == len(pairs)
    one = evaluate_model(dataset_config(tmp_path, dataset, "detect", "-one", dataset_config="name_random"),
                         problems=[PROBLEM], backend=_detector(lambda p: False))
    assert one.metrics["pairs"] == sum(o.concept == Concept.NAME_RANDOM for o, _ in pairs) > 0


def test_an_adapter_is_not_scored_on_the_tasks_it_trained_on(tmp_path, mutants, dataset, monkeypatch):
    from procure_trl.provenance import write_training_data

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    _, pairs = mutants
    adapter = tmp_path / "adapter"
    write_training_data(adapter, {"task_ids": [PROBLEM.task_id], "dataset": str(dataset), "split": "train"})
    for task, backend in (("repair", repairer(pairs, True)), ("detect", _detector(lambda p: False))):
        with pytest.raises(ValueError, match="trained on 1 of the tasks"):
            evaluate_model(dataset_config(tmp_path, dataset, task, adapter=str(adapter)), problems=[PROBLEM],
                           backend=backend)
        allowed = dataset_config(tmp_path, dataset, task, adapter=str(adapter), allow_train_overlap=True)
        assert evaluate_model(allowed, problems=[PROBLEM], backend=backend).metrics["pairs"] == len(pairs)


def test_a_dataset_without_mutants_is_refused_in_one_line(tmp_path, monkeypatch):
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    fixture = Path(__file__).parent / "fixtures" / "engine_counterfactuals.jsonl"
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(fixture), output_dir=str(tmp_path / "d"),
                                             test_size=0.5))
    with pytest.raises(ValueError, match="no mutants config.*procure build --mutants"):
        evaluate_model(dataset_config(tmp_path, tmp_path / "d", "repair"), backend=_detector(lambda p: False))
    with pytest.raises(ValueError, match="not both"):
        EvaluationConfig(model="m", task="repair", dataset=str(tmp_path / "d"), mutants=str(fixture),
                         output_dir=str(tmp_path))


def test_compare_puts_downstream_runs_side_by_side_with_paired_differences(tmp_path, mutants, monkeypatch):
    from procure_trl.evaluation.compare import CompareConfig, compare_runs

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, pairs = mutants
    runs = {}
    for name, task, backend in (("bug", "repair", repairer(pairs, False)), ("fix", "repair", repairer(pairs, True)),
                                ("says-correct", "detect", _detector(lambda p: False)),
                                ("oracle", "detect", _detector(lambda p: any(
                                    m.code.rstrip() + "\n\n# Is" in p for pair in pairs for m in pair)))):
        cfg = config(tmp_path, path, task)
        cfg.output_dir = str(tmp_path / name)
        runs[name] = evaluate_model(cfg, problems=[PROBLEM], backend=backend)
    repair = compare_runs(CompareConfig([str(tmp_path / "bug"), str(tmp_path / "fix")], str(tmp_path / "c1"),
                                        labels=["bug", "fix"], n_bootstrap=200))
    assert repair.task == "repair" and [r["pairs"] for r in repair.runs] == [len(pairs)] * 2
    diff = repair.differences[0]["scores"]["repair_pass@1"]
    assert diff["difference"] == pytest.approx(runs["fix"].metrics["repair_pass@1"]
                                               - runs["bug"].metrics["repair_pass@1"]) == 1.0
    assert tuple(diff["ci"]) == (1.0, 1.0)  # every pair fixed by one run, none by the other
    assert repair.runs[1]["scores"]["consistency"]["value"] == runs["fix"].metrics["consistency"]
    detect = compare_runs(CompareConfig([str(tmp_path / "says-correct"), str(tmp_path / "oracle")],
                                        str(tmp_path / "c2"), n_bootstrap=200))
    accuracy = detect.differences[0]["scores"]["accuracy"]
    assert accuracy["difference"] == pytest.approx(runs["oracle"].metrics["accuracy"]
                                                   - runs["says-correct"].metrics["accuracy"]) == 0.5
    text = (tmp_path / "c2" / "comparison.md").read_text()
    assert "# Comparison of `--task detect` runs" in text and "+0.500" in text
    with pytest.raises(ValueError, match="different --task"):
        compare_runs(CompareConfig([str(tmp_path / "bug"), str(tmp_path / "oracle")], str(tmp_path / "c3")))
