"""Engine JSONL -> schema rows -> task-level splits -> per-concept configs -> Parquet + card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from procure_trl.concepts import ORIGINAL, Concept
from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
from procure_trl.dataset.rows import (
    CONFIG_NAMES,
    add_token_columns,
    build_dataset_dict,
    build_rows,
    config_rows,
    pair_id_for,
    problem_statement,
    split_by_task,
)
from procure_trl.perturb.records import CounterfactualRecord, read_records

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"

ORIGINAL_CODE = "def f(x):\n    y = x + 1\n    return y\n"
RENAMED = "def f(x):\n    q = x + 1\n    return q\n"
assert RENAMED[14] == RENAMED[35] == "q" and len(RENAMED) == 37


def _line(**over):
    row = {"task_id": "T/1", "concept": "name_random", "status": "valid", "reason": "", "original": ORIGINAL_CODE,
           "code": RENAMED, "changed_spans": [[14, 15], [35, 36]]}
    row.update(over)
    return row


# ---- bad input gets a clear error ------------------------------------------------------------


def test_fixture_spans_point_at_changed_code():
    for record in read_records(FIXTURE):
        for s, e in record.changed_spans:
            assert record.code[s:e] != "" and record.code is not None


@pytest.mark.parametrize(
    "row, message",
    [
        ({k: v for k, v in _line().items() if k != "original"}, r"row 3: missing field\(s\) original"),
        (_line(concept="loop_unroll"), r"row 3: unknown concept 'loop_unroll'; valid concepts are: if_else_flip"),
        (_line(status="maybe"), "unknown status 'maybe'"),
        (_line(code=None), r"a 'valid' line needs field\(s\) code"),
        (
            _line(changed_spans=[[14, 15], [30, 99]]),
            r"changed_spans: span #1 \[30, 99\) lies outside the text of length 37"
        ),
        (_line(changed_spans=[]), "has no changed_spans"),
        (_line(task_id=""), "'task_id' must be a non-empty string"),
    ],
)
def test_bad_engine_lines_are_named(row, message):
    with pytest.raises(ValueError, match=message):
        CounterfactualRecord.from_dict(row, where="row 3")


def test_non_valid_lines_need_no_code():
    record = CounterfactualRecord.from_dict(
        _line(status="not_applicable", code=None, changed_spans=None, reason="no if")
    )
    assert record.code is None and record.reason == "no if" and record.concept is Concept.NAME_RANDOM


def test_jsonl_errors_carry_the_line_number(tmp_path):
    path = tmp_path / "engine.jsonl"
    path.write_text(json.dumps(_line()) + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"engine.jsonl:2: not valid JSON"):
        read_records(path)
    path.write_text(json.dumps(_line()) + "\n\n" + json.dumps({"task_id": "T/2"}) + "\n")
    with pytest.raises(ValueError, match=r"engine.jsonl:3: missing field\(s\) concept, status, original"):
        read_records(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no lines"):
        read_records(path)


def test_missing_statement_names_the_task():
    records = [CounterfactualRecord.from_dict(_line())]
    with pytest.raises(ValueError, match=r"no problem statement for task 'T/1'.*--benchmarks"):
        build_rows(records, {})


def test_tokenizer_without_offsets_is_refused():
    from transformers import ByT5Tokenizer

    rows = build_rows([CounterfactualRecord.from_dict(_line())], {"T/1": "Add one."})
    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        add_token_columns(rows, ByT5Tokenizer(), progress=False)


# ---- rows, pairs, configs ---------------------------------------------------------------------


@pytest.mark.parametrize("prompt_format", ["completion", "chat"])
def test_rows_pair_counterfactuals_with_their_original(prompt_format):
    from procure_trl.dataset.builder import load_tasks

    records = read_records(FIXTURE)
    tasks = load_tasks(["humaneval", "mbpp"])
    rows = build_rows(records, tasks, prompt_format=prompt_format)
    originals = [r for r in rows if r["concept"] == ORIGINAL]
    counterfactuals = [r for r in rows if r["concept"] != ORIGINAL]
    assert len(originals) == len({r.task_id for r in records})  # one original per task, even with 3 lines
    assert len(counterfactuals) == sum(r.status == "valid" for r in records)

    def program(row):  # the program a row trains on
        return row["prompt"] + row["completion"] if prompt_format == "completion" else row["completion"][0]["content"]

    def changed_text(row):
        text = row["completion"] if prompt_format == "completion" else row["completion"][0]["content"]
        return [text[s:e] for s, e in row["changed_spans"]]

    by_pair = {r["pair_id"]: r for r in originals}
    programs = {(r.task_id, r.concept.value): r for r in records if r.status == "valid"}
    for row in counterfactuals:
        original = by_pair[row["pair_id"]]
        record = programs[(row["task_id"], row["concept"])]
        assert program(row) == record.code and program(original) == record.original
        assert row["pair_id"] == pair_id_for(row["task_id"], program(original))
        assert changed_text(row) == [record.code[s:e] for s, e in record.changed_spans]
    for row in rows:
        task = tasks[row["task_id"]]
        if prompt_format == "completion":  # the prompt is the program start the harness gives the model
            assert row["prompt"] == task.prompt or row["concept"] != ORIGINAL
        else:
            assert [m["role"] for m in row["prompt"] + row["completion"]] == ["user", "assistant"]
            assert task.statement in row["prompt"][0]["content"] and task.prompt in row["prompt"][0]["content"]
    assert all(r["changed_spans"] == [] for r in originals)


@pytest.mark.parametrize("prompt_format", ["completion", "chat"])
def test_rows_give_back_the_records_they_were_built_from(prompt_format):
    """What `procure evaluate --dataset` reads: whole programs and spans into them, in either format."""
    from procure_trl.dataset.builder import load_tasks
    from procure_trl.dataset.rows import records_from_rows

    records = [r for r in read_records(FIXTURE) if r.status == "valid"]
    rows = build_rows(records, load_tasks(["humaneval", "mbpp"]), prompt_format=prompt_format)
    _, back = records_from_rows(rows)
    expected = {(r.task_id, r.concept.value): (r.original, r.code, [list(s) for s in r.changed_spans]) for r in records}
    assert {(r.task_id, r.concept.value): (r.original, r.code, [list(s) for s in r.changed_spans]) for r in back} \
        == expected


def test_concept_configs_hold_their_counterfactuals_and_those_originals_only():
    rows = build_rows(read_records(FIXTURE), {t: "s" for t in ("HumanEval/0", "HumanEval/3", "HumanEval/4",
                                                                      "HumanEval/7", "MBPP/2", "MBPP/3")})
    shuffle = config_rows(rows, "name_shuffle")
    assert {r["concept"] for r in shuffle} == {ORIGINAL, "name_shuffle"}
    pairs = {r["pair_id"] for r in shuffle if r["concept"] == "name_shuffle"}
    assert {r["pair_id"] for r in shuffle if r["concept"] == ORIGINAL} == pairs
    assert config_rows(rows, "if_else_flip") == []  # no valid if_else_flip line in the fixture
    assert len(config_rows(rows, "all")) == len(rows)
    with pytest.raises(ValueError, match="unknown concept"):
        config_rows(rows, "bogus")


@settings(max_examples=60, deadline=None)
@given(n_tasks=st.integers(1, 30), test_size=st.floats(0, 0.9), seed=st.integers(0, 10**6))
def test_split_keeps_each_task_on_one_side(n_tasks, test_size, seed):
    rows = [{"task_id": f"T/{t}", "i": i} for t in range(n_tasks) for i in range(3)]
    splits = split_by_task(rows, test_size=test_size, seed=seed)
    train = {r["task_id"] for r in splits["train"]}
    test = {r["task_id"] for r in splits.get("test", [])}
    assert not train & test
    assert sum(len(v) for v in splits.values()) == len(rows)
    assert splits == split_by_task(rows, test_size=test_size, seed=seed)  # seeded
    if test_size > 0 and n_tasks > 1:
        assert test and train


def test_split_rejects_bad_size():
    with pytest.raises(ValueError, match=r"test_size must be in \[0, 1\]"):
        split_by_task([], test_size=1.5)
    with pytest.raises(ValueError, match=r"--test-sizes: 'mbpp=2' is not BENCHMARK=SIZE"):
        BuildConfig(test_sizes="humaneval=0,mbpp=2")


def test_problem_statement_from_benchmark_prompts():
    from procure_trl.problems import load_problems

    humaneval = {p.task_id: p for p in load_problems("humaneval")}
    statement = problem_statement(humaneval["HumanEval/0"].prompt, "has_close_elements")
    assert statement.startswith("Check if in given list of numbers") and '"""' not in statement
    mbpp = problem_statement(
        "# Write a function to add.\n# Your code should pass these tests:\n# assert add(1, 2) == 3\n"
    )
    assert mbpp == "Write a function to add.\nYour code should pass these tests:\nassert add(1, 2) == 3"
    assert problem_statement("Sort the list.") == "Sort the list."


def test_token_columns_match_the_trainer_tokenization(tiny_tokenizer):
    from procure_trl.dataset.masks import prompt_completion_mask

    rows = build_rows([CounterfactualRecord.from_dict(_line())], {"T/1": "Add one to x."})
    tokenized = add_token_columns(rows, tiny_tokenizer, progress=False)
    for row in tokenized:
        expected = prompt_completion_mask(row["prompt"], row["completion"], row["changed_spans"], tiny_tokenizer)
        assert {k: row[k] for k in expected} == expected
    built = build_dataset_dict({"train": tokenized}, tokenized=True)
    ds = built.configs["all"]["train"]
    assert ds.features["perturbation_mask"].feature.dtype == "int8"
    assert ds[1]["perturbation_mask"] == tokenized[1]["perturbation_mask"] and sum(ds[1]["perturbation_mask"]) >= 2


# ---- the builder, locally -------------------------------------------------------------------------


def test_builder_writes_parquet_and_a_card_that_loads(tmp_path):
    from datasets import load_dataset

    args = BuildConfig(input_jsonl=str(FIXTURE), benchmarks="humaneval,mbpp", output_dir=str(tmp_path),
                       test_size=0.34, seed=1)
    built = build_counterfactual_dataset(args)
    card = (tmp_path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == list(built.configs) == ["all", "name_random", "name_shuffle"]
    assert set(meta["license"]) == {"mit", "cc-by-4.0"} and "MBPP (Austin et al., 2021" in card
    for config, counts in built.counts.items():
        loaded = load_dataset(str(tmp_path), config)
        assert {s: len(d) for s, d in loaded.items()} == counts
        assert loaded["train"].to_list() == built.configs[config]["train"].to_list()
        assert f"| `{config}` | {counts['train']} | {counts.get('test', 0)} |" in card  # the card's table is computed
    train_tasks = set(built.configs["all"]["train"]["task_id"])
    assert train_tasks.isdisjoint(built.configs["all"]["test"]["task_id"])
    assert set(CONFIG_NAMES) >= set(built.configs)


def test_build_options_parse_with_either_spelling():
    from procure_trl.cli import parse_args
    from procure_trl.commands.options import config_kwargs

    for argv in (["--input_jsonl", "x.jsonl", "--push_to_hub", "--repo_id", "me/cf", "--private", "--test_size", "0.1"],
                 [
                     "--input-jsonl", "x.jsonl", "--push-to-hub", "--repo-id", "me/cf", "--private", "--test-size",
                     "0.1"
                 ]):
        args = BuildConfig(**config_kwargs(BuildConfig, parse_args(["build", *argv])))
        assert args.push_to_hub and args.private and args.repo_id == "me/cf" and args.test_size == 0.1
    with pytest.raises(ValueError, match="--push-to-hub needs --repo-id"):
        BuildConfig(push_to_hub=True)


def test_the_script_is_the_command(tmp_path):
    """datasets_scripts/build_counterfactuals.py runs `procure build`: same options, same one-line errors."""
    script = ROOT / "datasets_scripts" / "build_counterfactuals.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([sys.executable, str(script), "--input_jsonl", str(tmp_path / "missing.jsonl"),
                          "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("procure build: error:") and "missing.jsonl" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    good = subprocess.run([sys.executable, str(script), "--input_jsonl", str(FIXTURE), "--benchmarks", "humaneval,mbpp",
                           "--output_dir", str(tmp_path / "out"), "--test_size", "0.34"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert good.returncode == 0, good.stderr[-3000:]
    assert (tmp_path / "out" / "all" / "train-00000-of-00001.parquet").is_file()


def test_a_misspelled_benchmark_is_one_line_with_a_suggestion_before_any_work(tmp_path):
    script = ROOT / "datasets_scripts" / "build_counterfactuals.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script), "--benchmarks", "humaneva", "--output_dir", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "procure build: error: --benchmarks: unknown benchmark 'humaneva' (did you mean 'humaneval'?); use a "
        "comma-separated list of humaneval, mbpp, mbpp-sanitized, codecontests (statements of other tasks come "
        "from --problems FILE.jsonl)"
    ]
    assert not (tmp_path / "o").exists()  # refused before the engine ran


def test_a_failed_build_continues_with_the_engine_output_it_finished(tmp_path, monkeypatch, capsys):
    """The engine runs in this process; a second `procure build` after a failure keeps the problems the engine
    finished (its run record says they were made with the same settings) and decides only the others."""
    import procure_trl.dataset.builder as builder
    import procure_trl.perturb.engine as engine
    from procure_trl.cli import main
    from procure_trl.errors import UserError

    decided: list[str] = []
    real_decide = engine._decide
    monkeypatch.setattr(engine, "_decide", lambda problems, *a: decided.extend(p.task_id for p in problems)
                        or real_decide(problems, *a))
    real_load_tasks = builder.load_tasks

    def failing_load_tasks(*args):
        raise UserError("statements unavailable")

    monkeypatch.setattr(builder, "load_tasks", failing_load_tasks)
    argv = ["build", "--benchmarks", "humaneval", "--limit", "3", "--test-size", "0.34", "--output-dir", str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "procure build: error: statements unavailable"
    engine_file = tmp_path / "engine" / "humaneval_counterfactuals.jsonl"
    finished = engine_file.read_text().splitlines()
    assert len(finished) == 3 * len(Concept) and decided == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    # as if the first run had been stopped after its first problem
    engine_file.write_text("\n".join(finished[: len(Concept)]) + "\n")
    monkeypatch.setattr(builder, "load_tasks", real_load_tasks)
    decided.clear()
    assert main(argv) == 0, capsys.readouterr().err
    assert decided == ["HumanEval/1", "HumanEval/2"]  # HumanEval/0 was kept, not decided again
    assert engine_file.read_text().splitlines() == finished  # the same lines as an uninterrupted run
    assert json.loads((tmp_path / "build.json").read_text())["finished"] is True


def _built(tmp_path, *extra):
    from procure_trl.cli import main

    argv = ["build", "--input-jsonl", str(FIXTURE), "--benchmarks", "humaneval,mbpp", "--test-size", "0.34",
            "--output-dir", str(tmp_path), *extra]
    return main(argv)


def test_a_folder_built_with_other_settings_is_refused_in_one_line_and_overwrite_rebuilds(tmp_path, capsys):
    assert _built(tmp_path, "--seed", "1") == 0
    card = (tmp_path / "README.md").read_bytes()
    capsys.readouterr()
    assert _built(tmp_path, "--seed", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was built with other settings: seed 1 then, 2 now;" in err and "--overwrite" in err
    assert (tmp_path / "README.md").read_bytes() == card  # nothing replaced
    assert _built(tmp_path, "--seed", "1") == 0  # the same settings: built again, the same card
    assert (tmp_path / "README.md").read_bytes() == card
    # a config of an earlier build that this one does not make, and a file of the user's
    stale = tmp_path / "if_else_flip"
    stale.mkdir()
    (stale / "train-00000-of-00001.parquet").write_bytes(
        (tmp_path / "all" / "train-00000-of-00001.parquet").read_bytes()
    )
    (tmp_path / "notes.txt").write_text("mine")
    assert _built(tmp_path, "--seed", "2", "--overwrite") == 0
    assert not stale.exists() and (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "build.json").read_text())["settings"]["seed"] == 2


def test_an_input_file_changed_since_the_build_is_a_difference(tmp_path, capsys):
    from procure_trl.cli import main

    source = tmp_path / "engine.jsonl"
    lines = FIXTURE.read_text().splitlines()
    source.write_text("\n".join(lines) + "\n")
    argv = [
        "build", "--input-jsonl", str(source), "--benchmarks", "humaneval,mbpp", "--output-dir", str(tmp_path / "o")
    ]
    assert main(argv) == 0
    source.write_text("\n".join(lines[:-1]) + "\n")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings: inputs" in err and str(source) in err


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_an_output_dir_the_builder_did_not_make_is_one_line(tmp_path, capsys, kind):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "data.txt").write_text("x")
    assert _built(target) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"procure build: error: --output-dir {target}")
    assert ("is a file" in err) if kind == "file" else ("--overwrite" in err and (target / "data.txt").exists())


def test_bad_input_rows_and_broken_originals_give_no_rows():
    good = CounterfactualRecord.from_dict(_line())
    bad_input = CounterfactualRecord.from_dict(_line(task_id="in.jsonl:3", status="rejected", code=None,
                                                     changed_spans=[], original="not json", stage="input"))
    broken = [CounterfactualRecord.from_dict(_line(task_id="T/2", status="rejected", stage="original", code=None,
                                                   changed_spans=[])),
              CounterfactualRecord.from_dict(_line(task_id="T/2", concept="if_else_flip", status="not_applicable",
                                                   code=None, changed_spans=[], stage="perturbation"))]
    rows = build_rows([good, bad_input, *broken], {"T/1": "Add one.", "T/2": "Broken."})
    assert {r["task_id"] for r in rows} == {"T/1"}  # T/2's original fails its tests: no row at all
    assert "not json" not in {r["completion"] for r in rows}


def test_unvalidated_counterfactuals_are_refused_unless_allowed():
    record = CounterfactualRecord.from_dict(_line(stage="unvalidated"))
    with pytest.raises(ValueError, match=r"not validated .*--no-validate.*--allow_unvalidated"):
        build_rows([record], {"T/1": "Add one."})
    assert len(build_rows([record], {"T/1": "Add one."}, allow_unvalidated=True)) == 2


def test_one_command_runs_the_engine_and_builds(tmp_path):
    """No --input-jsonl: the builder runs `procure perturb` itself (on the first problems only, for speed)."""
    args = BuildConfig(benchmarks="humaneval", limit=3, output_dir=str(tmp_path), test_size=0.34)
    built = build_counterfactual_dataset(args)
    engine_lines = (tmp_path / "engine" / "humaneval_counterfactuals.jsonl").read_text().splitlines()
    assert len(engine_lines) == 3 * len(Concept)
    valid = [json.loads(line) for line in engine_lines if json.loads(line)["status"] == "valid"]
    rows = [r for split in built.configs["all"].values() for r in split]
    assert sum(r["concept"] != ORIGINAL for r in rows) == len(valid) > 0
    assert {r["task_id"] for r in rows} == {"HumanEval/0", "HumanEval/1", "HumanEval/2"}
    for row in rows:  # real engine spans index the completion
        assert all(0 <= s < e <= len(row["completion"]) for s, e in row["changed_spans"])
