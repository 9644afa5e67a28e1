"""`procure perturb --dataset`: formats, the per-batch transform, the datasets engine, the card, the CLI."""

from __future__ import annotations

import json

import pytest

from procure_trl.perturb.scale.formats import CONVERSATIONAL, TEXT, detect_format, python_blocks
from procure_trl.validation.pipeline import check_spans

CODE = (
    "def add_nums{k}(a, b):\n"
    "    total = a + b\n"
    "    if total > 10:\n"
    "        extra = 1\n"
    "    else:\n"
    "        extra = 2\n"
    "    return total + extra\n"
)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _messages_row(k):
    answer = f"Here it is:\n```python\n{CODE.format(k=k)}```\nAnd a shell line:\n```bash\nls -l\n```\n"
    return {"messages": [{"role": "user", "content": f"Write add_nums{k}."}, {"role": "assistant", "content": answer}]}


def test_python_blocks_finds_parsing_python_fences_only():
    text = "Intro\n```python\nx = 1\n```\n```js\nlet y = 2;\n```\n```\nnot python (\n```\n```py\ny = 2\n```\n"
    assert [text[s:e] for s, e in python_blocks(text)] == ["x = 1\n", "y = 2\n"]
    assert python_blocks("def f():\n    return 1\n") == [(0, 22)]
    assert python_blocks("Just prose, no code.") == []


def test_detect_format():
    messages = _messages_row(0)
    assert detect_format(["messages"], messages).kind == CONVERSATIONAL
    fmt = detect_format(["prompt", "completion", "tests"], {"prompt": "p", "completion": "x = 1\n", "tests": ""})
    assert (fmt.kind, fmt.code_column, fmt.prompt_column, fmt.tests_column) == (TEXT, "completion", "prompt", "tests")
    conv = {"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "assistant", "content": "x = 1"}]}
    assert detect_format(["prompt", "completion"], conv).kind == CONVERSATIONAL
    fmt = detect_format(["text", "code", "test_list"], {"text": "t", "code": "x = 1", "test_list": []})
    assert (fmt.code_column, fmt.prompt_column, fmt.tests_column) == ("code", "text", "test_list")
    with pytest.raises(ValueError, match="no code column found among id, body; name it with --code-column"):
        detect_format(["id", "body"], {"id": 1, "body": "x"})
    with pytest.raises(ValueError, match="--code-column 'src' is not a column"):
        detect_format(["prompt", "completion"], None, code_column="src")


def _run(tmp_path, rows, name, **options):
    from datasets import load_dataset

    from procure_trl.perturb.scale.config import DatasetPerturbConfig
    from procure_trl.perturb.scale.run import perturb_dataset

    source = tmp_path / f"{name}.jsonl"
    if not source.exists():  # a rewritten file is a new input for datasets' cache
        _write_jsonl(source, rows)
    config = DatasetPerturbConfig(dataset=str(source), output_dir=str(tmp_path / f"{name}_out"), batch_size=4,
                                  **options)
    result = perturb_dataset(config)
    return result, load_dataset(str(tmp_path / f"{name}_out"))["train"]


def test_messages_dataset_keeps_its_format_and_every_python_block_is_perturbed(tmp_path):
    rows = [_messages_row(k) for k in range(3)]
    result, out = _run(tmp_path, rows, "chat")
    assert set(out.column_names) == {"messages", "pair_id", "concept", "changed_spans", "changed_message",
                                     "tests_run", "outcomes"}
    originals = [r for r in out if r["concept"] == "original"]
    assert [r["messages"] for r in originals] == [r["messages"] for r in rows]
    by_pair = {r["pair_id"]: r for r in originals}
    counterfactuals = [r for r in out if r["concept"] != "original"]
    # if_else_flip, name_random and name_shuffle apply to the one Python block of each row
    assert sorted({r["concept"] for r in counterfactuals}) == ["if_else_flip", "name_random", "name_shuffle"]
    assert len(counterfactuals) == 9 == result.counts.counterfactuals
    for row in counterfactuals:
        original = by_pair[row["pair_id"]]["messages"][1]["content"]
        changed = row["messages"][row["changed_message"]]["content"]
        assert row["changed_message"] == 1 and row["messages"][0] == by_pair[row["pair_id"]]["messages"][0]
        assert check_spans(original, changed, [tuple(s) for s in row["changed_spans"]]) is None
        assert "```bash\nls -l\n```" in changed and not row["tests_run"]


def test_prompt_completion_without_tests_is_marked_and_counted_on_the_card(tmp_path):
    rows = [{"prompt": f"Add {k}.", "completion": CODE.format(k=k)} for k in range(4)]
    result, out = _run(tmp_path, rows, "plain")
    assert out.column_names[:2] == ["prompt", "completion"]
    assert not any(out["tests_run"])
    per_concept = {c: out["concept"].count(c) for c in set(out["concept"])}
    assert per_concept == {"original": 4, "if_else_flip": 4, "name_random": 4, "name_shuffle": 4}
    card = (tmp_path / "plain_out" / "README.md").read_text()
    assert "Original rows: 4 (0 ran their tests). Counterfactual rows: 12." in card
    assert "| if_else_flip | 4 | 0 | 4 | 0 | 0 |" in card
    assert "| independent_swap | 0 | 0 | 0 | 0 | 4 |" in card
    assert result.counts.concepts["name_random"].rows == 4


def test_tests_column_runs_in_the_executor_and_can_reject(tmp_path):
    # the second row's tests read a local variable's name: every renaming fails them, the flip passes
    rows = [
        {"prompt": "Add.", "completion": CODE.format(k=0), "tests": ["assert add_nums0(1, 2) == 5"]},
        {"prompt": "Add.", "completion": CODE.format(k=1),
         "tests": ["assert add_nums1(1, 2) == 5", "assert 'total' in add_nums1.__code__.co_varnames"]},
        {"prompt": "Add.", "completion": CODE.format(k=2), "tests": []},
    ]
    result, out = _run(tmp_path, rows, "tested", concepts=["if_else_flip", "name_random"])
    kept = {(r["completion"][4:13], r["concept"]): r["tests_run"] for r in out}
    assert kept == {("add_nums0", "original"): True, ("add_nums0", "if_else_flip"): True,
                    ("add_nums0", "name_random"): True, ("add_nums1", "original"): True,
                    ("add_nums1", "if_else_flip"): True, ("add_nums2", "original"): False,
                    ("add_nums2", "if_else_flip"): False, ("add_nums2", "name_random"): False}
    rejected = [o for r in out if r["completion"].startswith("def add_nums1") for o in r["outcomes"]]
    assert "name_random:rejected:execution" in rejected
    counts = result.counts.concepts
    assert (counts["if_else_flip"].rows, counts["if_else_flip"].test_validated) == (3, 2)
    assert (
        counts["name_random"].rows, counts["name_random"].test_validated, counts["name_random"].rejected
    ) == (2, 1, 1)


def test_streaming_and_num_proc_give_the_same_rows(tmp_path):
    rows = [{"prompt": f"Add {k}.", "completion": CODE.format(k=k)} for k in range(6)]
    _, plain = _run(tmp_path, rows, "a")
    _, streamed = _run(tmp_path, rows, "b", streaming=True)
    _, parallel = _run(tmp_path, rows, "c", num_proc=2)
    assert plain.to_list() == streamed.to_list() == parallel.to_list()


def test_rerun_reuses_the_finished_map(tmp_path, monkeypatch):
    from procure_trl.perturb.scale.transform import CounterfactualBatchTransform

    rows = [{"prompt": f"Add {k}.", "completion": CODE.format(k=k)} for k in range(4)]
    _, first = _run(tmp_path, rows, "again")

    def fail(self, rows):
        raise AssertionError("the transform ran again instead of reusing the cached map")

    monkeypatch.setattr(CounterfactualBatchTransform, "transform_rows", fail)
    _, second = _run(tmp_path, rows, "again")
    assert second.to_list() == first.to_list()


def test_cli_dataset_mode(tmp_path, capsys):
    from procure_trl.cli import main

    source = _write_jsonl(tmp_path / "in.jsonl", [{"prompt": "Add.", "completion": CODE.format(k=0)}])
    assert main(["perturb", "--dataset", str(source), "--output-dir", str(tmp_path / "out"),
                 "--concepts", "name_random"]) == 0
    assert "| name_random | 1 | 0 | 1 | 0 | 0 |" in capsys.readouterr().out
    assert main(["perturb", "--dataset", str(source), "--output-dir", str(tmp_path / "o"), "--code-column", "x"]) == 2
    assert "--code-column 'x' is not a column of the dataset (columns: prompt, completion)" in capsys.readouterr().err
    assert main(["perturb", "--benchmark", "mbpp", "--output-dir", str(tmp_path / "o")]) == 2
    assert "--output-dir apply to --dataset only" in capsys.readouterr().err


def test_outputs_in_folders_of_the_same_name_load_as_themselves_and_keep_the_split(tmp_path):
    from datasets import load_dataset

    from procure_trl.perturb.scale.config import DatasetPerturbConfig
    from procure_trl.perturb.scale.run import perturb_dataset

    lengths = {}
    for name, count in (("a", 1), ("b", 3)):
        source = _write_jsonl(tmp_path / f"{name}.jsonl",
                              [{"prompt": "Add.", "completion": CODE.format(k=k)} for k in range(count)])
        output = tmp_path / name / "out"  # the same folder name: datasets must not serve one for the other
        perturb_dataset(DatasetPerturbConfig(dataset=str(source), output_dir=str(output), split="test",
                                             concepts=["name_random"]))
        lengths[name] = len(load_dataset(str(output))["test"])
    assert lengths == {"a": 2, "b": 6}
