"""What a model was made from: training-data records, tokenizer fingerprints, the guards built on them, and
datasets named by a local path that does not exist."""

from __future__ import annotations

import json

import pytest

from procure_trl.dataset.rows import check_dataset_name, load_dataset_split
from procure_trl.evaluation.guards import check_adapter_base, check_train_overlap
from procure_trl.provenance import (
    TRAINING_DATA_FILE,
    dataset_fingerprint,
    tokenizer_fingerprint,
    training_data_record,
    write_training_data,
)
from procure_trl.testing_utils import build_tiny_tokenizer
from procure_trl.training.data import check_concept_row


def _rows(*task_ids):
    return [{"task_id": t, "concept": "original", "completion": f"x = {i}\n"} for i, t in enumerate(task_ids)]


def test_tokenizer_fingerprint_follows_the_vocabulary_not_the_name():
    a, b = build_tiny_tokenizer("bpe"), build_tiny_tokenizer("bpe")
    b.name_or_path = "somewhere/else"
    assert tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(build_tiny_tokenizer("bpe", vocab_size=400))
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(build_tiny_tokenizer("wordpiece"))


def test_training_data_record_names_the_rows():
    from datasets import Dataset

    dataset = Dataset.from_list(_rows("T/2", "T/1", "T/2"))
    record = training_data_record(dataset, {"dataset": "me/cf", "config": "all", "split": "train"})
    assert record == {"dataset": "me/cf", "config": "all", "split": "train", "fingerprint": record["fingerprint"],
                      "num_rows": 3, "task_ids": ["T/1", "T/2"]}
    same = Dataset.from_list(_rows("T/2", "T/1", "T/2"))
    other = Dataset.from_list(_rows("T/2", "T/1", "T/3"))
    assert dataset_fingerprint(same) == record["fingerprint"] != dataset_fingerprint(other)


def _adapter(tmp_path, task_ids=None, base="base-model"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    if task_ids is not None:
        write_training_data(tmp_path, {"dataset": "me/cf", "config": "all", "split": "train", "task_ids": task_ids})
    return str(tmp_path)


def test_train_overlap_is_refused_naming_the_tasks(tmp_path):
    adapter = _adapter(tmp_path / "a", ["T/1", "T/2", "T/3"])
    with pytest.raises(ValueError) as info:
        check_train_overlap(adapter, ["T/3", "T/4", "T/1"])
    message = str(info.value)
    assert "was trained on 2 of the tasks to score (T/1, T/3) from me/cf (config all, split train)" in message
    assert "--allow-train-overlap" in message and "\n" not in message
    check_train_overlap(adapter, ["T/4", "T/5"])  # held-out tasks pass
    check_train_overlap(_adapter(tmp_path / "b"), ["T/1"])  # an adapter without the file: nothing to check
    assert (tmp_path / "a" / TRAINING_DATA_FILE).is_file()


def test_adapter_on_another_base_is_refused(tmp_path):
    adapter = _adapter(tmp_path / "a", base=str(tmp_path / "base"))
    (tmp_path / "base").mkdir()
    check_adapter_base(adapter, str(tmp_path / "base") + "/")  # the same folder, written another way
    with pytest.raises(ValueError, match=r"trained on base model .*/base \(its adapter_config.json\) but --model "
                                         r"is other/model; .*--allow-base-mismatch"):
        check_adapter_base(adapter, "other/model")


def test_token_ids_of_another_tokenizer_are_refused():
    row = {"input_ids": [1, 2], "perturbation_mask": [0, 1], "tokenizer_name": "tok-a", "tokenizer_fingerprint": "aaa"}
    assert check_concept_row(row, 0, mask_column="perturbation_mask",
                             tokenizer={"tokenizer_name": "tok-a", "tokenizer_fingerprint": "aaa"}) == {}
    with pytest.raises(ValueError, match=r"row 0: the dataset was tokenized with 'tok-a' \(vocabulary aaa\) but the "
                                         r"trainer's tokenizer is 'tok-b' \(vocabulary bbb\); rebuild"):
        check_concept_row(row, 0, mask_column="perturbation_mask",
                          tokenizer={"tokenizer_name": "tok-b", "tokenizer_fingerprint": "bbb"})


@pytest.mark.parametrize("name", ["./missing", "outputs/procure-cf", "a/b/c", "~/no-such-folder-here"])
def test_a_missing_local_dataset_folder_is_reported_as_such(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()  # so `outputs/procure-cf` can only be a path
    with pytest.raises(FileNotFoundError, match="dataset folder .* does not exist"):
        check_dataset_name(name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset_split(name, "all", "test")
    check_dataset_name("me/procure-cf")  # a Hub id is left to the Hub


def test_cli_reports_a_missing_dataset_folder_in_one_line(tmp_path, monkeypatch, capsys):
    from procure_trl.cli import main

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    monkeypatch.chdir(tmp_path)
    rc = main(["evaluate", "--model", "m", "--dataset", "./outputs/procure-cf", "--output-dir", "o"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("procure evaluate: error: dataset folder './outputs/procure-cf' does not exist")
    assert len(err.splitlines()) == 1


def test_a_local_folder_rebuilt_in_place_is_read_afresh(tmp_path):
    from datasets import Dataset

    readme = "---\nconfigs:\n- config_name: all\n  data_files:\n  - split: test\n    path: all/test-*\n---\n"
    folder = tmp_path / "cf"
    (folder / "all").mkdir(parents=True)
    (folder / "README.md").write_text(readme)
    for task in ("T/1", "T/2"):  # same size, other rows: datasets' cache key of the folder does not change
        Dataset.from_list(_rows(task)).to_parquet(str(folder / "all" / "test-00000-of-00001.parquet"))
        assert load_dataset_split(str(folder), "all", "test")["task_id"] == [task]
