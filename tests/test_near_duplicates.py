"""Near-duplicate tasks: the word and solution measures, single-link groups, a split that keeps groups whole, and
the evaluation refusing an adapter's near-duplicate tasks."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mbpp_data import requires_full_mbpp

from procure_trl.dataset.near_duplicates import (
    ComparableTask,
    content_words,
    jaccard,
    largest_cross_similarity,
    near_duplicate_groups,
    near_duplicates_of,
    similar_pairs,
    solution_shape,
    statement_text,
    statement_words,
)
from procure_trl.dataset.rows import problem_statement, split_by_task, split_tasks, task_source
from procure_trl.evaluation.guards import check_near_duplicate_overlap
from procure_trl.provenance import TRAINING_DATA_FILE

# ---- the measures -------------------------------------------------------------------------------------------


def test_examples_and_asserts_are_removed_from_statements():
    humaneval = "Return length of given string\n>>> strlen('')\n0\n>>> strlen('abc')\n3"
    mbpp = "Write a function to find length of the string.\nYour code should pass these tests:\nassert f('ab')==2"
    calls = "Sort the array.\n\nsort_array([2, 1]) == [1, 2]\nsort_array([]) -> []\nKeep it stable."
    assert statement_text(humaneval) == "Return length of given string"
    assert statement_text(mbpp) == "Write a function to find length of the string."
    assert statement_text(calls) == "Sort the array.\n\nKeep it stable."
    assert statement_words(humaneval) == {"return", "length", "given", "string"}  # three letters or more
    # the two say the same in other words: their content words agree
    assert content_words(statement_words(humaneval)) == content_words(statement_words(mbpp)) == {"length", "string"}
    assert content_words({"lists", "class", "sums"}) == {"list", "class", "sum"}


def test_solution_shape_ignores_names_docstrings_and_annotations_only():
    a = 'def strlen(string: str) -> int:\n    """Length."""\n    n = len(string)\n    return n\n'
    b = "import os\ndef size(s):\n    k = len(s)\n    return k\n"
    assert solution_shape(a) == solution_shape(b) is not None
    assert solution_shape(b) != solution_shape(b.replace("len(", "sorted("))  # builtins are not abstracted
    assert solution_shape(b) != solution_shape(b.replace("return k", "return k + 1"))
    assert solution_shape("def f(:\n") is None and solution_shape("  \n") is None


word_sets = st.dictionaries(st.integers(0, 40).map(lambda i: f"T/{i}"),
                            st.frozensets(st.sampled_from("abcdefgh"), max_size=6), max_size=25)


@settings(max_examples=80, deadline=None)
@given(sets=word_sets, other=word_sets, threshold=st.sampled_from([0.3, 0.5, 0.8, 1.0]))
def test_similar_pairs_are_exactly_the_brute_force_pairs(sets, other, threshold):
    within = {(a, b) for a, b, _ in similar_pairs(sets, threshold)}
    assert within == {(a, b) for a, b in itertools.combinations(sets, 2) if jaccard(sets[a], sets[b]) >= threshold}
    between = {(a, b) for a, b, _ in similar_pairs(sets, threshold, other)}
    assert between == {(a, b) for a in sets for b in other if jaccard(sets[a], other[b]) >= threshold}
    best = max((jaccard(sets[a], other[b]) for a in sets for b in other), default=0.0)
    assert largest_cross_similarity(sets, other)[0] == pytest.approx(best)


def test_groups_are_single_link_components_of_every_kind_of_link():
    tasks = {
        "A/1": ComparableTask("Count the vowels of a word in a sentence quickly"),
        "A/2": ComparableTask("Count the vowels of a word in a sentence"),  # 7 of 8 words: linked to A/1
        "A/3": ComparableTask("Reverse every word of the sentence"),
        "B/1": ComparableTask("Return length of given string"),
        "B/2": ComparableTask("Write a function to find length of the string."),  # same content words as B/1
        "B/3": ComparableTask("Something else entirely", "def g(a):\n    return len(a)\n"),
        "B/4": ComparableTask("Unrelated wording here", "def h(xs):\n    return len(xs)\n"),  # same solution as B/3
    }
    groups = near_duplicate_groups(tasks)
    assert groups == [["A/1", "A/2"], ["A/3"], ["B/1", "B/2"], ["B/3", "B/4"]]
    assert near_duplicate_groups(tasks, threshold=1.0)[0] == ["A/1"]  # 7/8 < 1: no longer linked
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        near_duplicate_groups(tasks, threshold=0)
    found = near_duplicates_of({"Q/1": ComparableTask("Find the length of a string")}, tasks)
    assert [other for other, _ in found["Q/1"]] == ["B/1", "B/2"]


# ---- the split ----------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), size=st.sampled_from([0.1, 0.2, 0.5]), seed=st.integers(0, 1000),
       data=st.data())
def test_split_keeps_groups_whole_and_each_source_near_its_share(n, size, seed, data):
    tasks = [f"{'AB'[i % 2]}/{i}" for i in range(n)]
    shuffled = data.draw(st.permutations(tasks))
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n // 4)))
    groups = [list(g) for g in (shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, n])) if len(g) <= 3]
    split = split_tasks(tasks, size, seed, groups=groups)
    assert sorted(split.train + split.test) == sorted(tasks) and not set(split.train) & set(split.test)
    for group in groups:
        assert set(group) <= set(split.train) or set(group) <= set(split.test)
    for source in "AB":
        total = sum(task_source(t) == source.lower() for t in tasks)
        tested = sum(task_source(t) == source.lower() for t in split.test)
        assert tested <= max(round(size * total), 1)
        assert tested >= round(size * total) - 2 * 3  # the groups that did not fit are at most a few tasks short
    assert split == split_tasks(tasks, size, seed, groups=groups)  # seeded


def test_whole_benchmarks_in_test_or_train_and_near_duplicates_left_out():
    tasks = ["HumanEval/1", "HumanEval/2", "HumanEval/3", "MBPP/1", "MBPP/2"]
    groups = [["HumanEval/2", "MBPP/2"]]
    split = split_tasks(tasks, 0.2, 0, groups=groups, test_sizes={"humaneval": 0.0, "mbpp": 1.0})
    assert sorted(split.test) == ["MBPP/1", "MBPP/2"] and sorted(split.train) == ["HumanEval/1", "HumanEval/3"]
    assert list(split.left_out) == ["HumanEval/2"] and "MBPP/2" in split.left_out["HumanEval/2"]
    every = split_tasks(tasks, 1.0, 0, groups=groups)
    assert sorted(every.test) == sorted(tasks) and not every.train
    rows = [{"task_id": t, "concept": "original"} for t in tasks]
    assert split_by_task(rows, 1.0) == {"train": [], "test": rows} and split_by_task(rows, 0.0) == {"train": rows}
    with pytest.raises(ValueError, match=r"test_size must be in \[0, 1\]"):
        split_tasks(tasks, 1.5)


# ---- HumanEval + MBPP -----------------------------------------------------------------------------------------


def _corpus():
    from procure_trl.problems import load_problems

    problems = load_problems("humaneval") + load_problems("mbpp")
    statements = {p.task_id: problem_statement(p.prompt, p.entry_point) for p in problems}
    rows = [{"task_id": p.task_id, "concept": "original", "prompt": statements[p.task_id], "completion": p.program}
            for p in problems]
    return rows, statements


def _cross_pairs_at(split, words, threshold=0.8):
    return [(a, b) for a in split.train for b in split.test if jaccard(words[a], words[b]) >= threshold]


@requires_full_mbpp
def test_default_split_of_humaneval_and_mbpp_has_no_near_duplicates_across_it():
    from procure_trl.dataset.builder import BuildConfig, split_without_near_duplicates

    rows, statements = _corpus()
    words = {t: statement_words(s) for t, s in statements.items()}
    split = split_without_near_duplicates(rows, statements, BuildConfig())
    assert not _cross_pairs_at(split, words)  # no train/test pair shares >= 80 % of its statement words
    side = {**{t: "train" for t in split.train}, **{t: "test" for t in split.test}}
    assert side["HumanEval/23"] == side["MBPP/813"]
    assert 0.18 <= len(split.test) / len(rows) <= 0.22 and not split.left_out
    for source in ("humaneval", "mbpp"):
        share = Counter(task_source(t) for t in split.test)[source] / sum(
            task_source(r["task_id"]) == source for r in rows
        )
        assert 0.18 <= share <= 0.22
    # the same proportion split by task id alone leaks: the check above can fail
    plain = split_tasks(sorted(statements), 0.2, 0)
    assert len({b for _, b in _cross_pairs_at(plain, words)}) > 10


@requires_full_mbpp
def test_evaluation_refuses_near_duplicates_of_the_training_tasks(tmp_path):
    from procure_trl.problems import load_problems

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / TRAINING_DATA_FILE).write_text(json.dumps({"dataset": "d", "config": "all", "split": "train",
                                                          "task_ids": ["HumanEval/23", "HumanEval/0"]}))
    mbpp = {p.task_id: p for p in load_problems("mbpp")}
    with pytest.raises(ValueError, match=r"near duplicates of 1 of the tasks to score \(MBPP/813 ~ HumanEval/23 "
                                         r".*--allow-train-overlap"):
        check_near_duplicate_overlap(str(adapter), [mbpp["MBPP/2"], mbpp["MBPP/813"]])
    check_near_duplicate_overlap(str(adapter), [mbpp["MBPP/2"], mbpp["MBPP/3"]])  # unrelated tasks pass


def test_evaluate_refuses_them_unless_overlap_is_allowed(tmp_path, monkeypatch):
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.run import evaluate_model
    from procure_trl.evaluation.sampling import ScriptedBackend
    from procure_trl.problems import Problem

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    trained = Problem("T/1", 'def strlen(s):\n    """Return length of given string"""\n', "    return len(s)\n",
                      "assert strlen('ab') == 2\n", "strlen")
    twin = Problem("T/2", "# Write a function to find length of the string.\n", "def size(x):\n    return len(x)\n",
                   "assert size('abc') == 3\n", "size")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / TRAINING_DATA_FILE).write_text(json.dumps({"dataset": "d", "task_ids": ["T/1"]}))
    # the first problem only is scored; the second gives the training task's text
    config = dict(model="unused", adapter=str(adapter), n=1, k=(1,), num_workers=1, limit=1)
    with pytest.raises(ValueError, match=r"near duplicates of 1 of the tasks to score \(T/2 ~ T/1"):
        evaluate_model(EvaluationConfig(output_dir=str(tmp_path / "a"), **config), problems=[twin, trained],
                       backend=ScriptedBackend({}, default=""))
    report = evaluate_model(EvaluationConfig(output_dir=str(tmp_path / "b"), allow_train_overlap=True, **config),
                            problems=[twin, trained], backend=ScriptedBackend({}, default="    return 0\n"))
    assert [t["task_id"] for t in report.tasks] == ["T/2"]


def test_the_builder_splits_per_benchmark_and_the_card_reports_the_closest_pair(tmp_path):
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "engine_counterfactuals.jsonl")
    built = build_counterfactual_dataset(BuildConfig(input_jsonl=fixture, benchmarks="humaneval,mbpp",
                                                     output_dir=str(tmp_path), test_sizes="humaneval=0,mbpp=1"))
    splits = built.configs["all"]
    assert {task_source(t) for t in splits["train"]["task_id"]} == {"humaneval"}
    assert {task_source(t) for t in splits["test"]["task_id"]} == {"mbpp"}
    card = (tmp_path / "README.md").read_text()
    n_test = len(set(splits["test"]["task_id"]))
    assert f"mbpp: {n_test} of {n_test} tasks in `test` (100.0 %)" in card
    assert "The largest share of statement words between a `train` and a `test` task is" in card
    with pytest.raises(ValueError, match="--test-sizes names 'codecontests', but no task comes from it"):
        build_counterfactual_dataset(BuildConfig(input_jsonl=fixture, benchmarks="humaneval,mbpp",
                                                 output_dir=str(tmp_path / "b"), test_sizes="codecontests=1"))
