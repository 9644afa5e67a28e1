"""The output record and its one append-only JSONL writer/reader: round trips, torn tails, resume, no clobber."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturb.records import (
    CounterfactualRecord,
    RecordWriter,
    check_output_path,
    read_records,
    sort_records,
)
from procure_trl.statuses import Stage

FIXTURE = Path(__file__).parent / "fixtures" / "engine_counterfactuals.jsonl"


def record(task, concept="name_random", **over):
    fields = dict(status="not_applicable", reason="nothing to rename", original="x = 1\n", stage="perturbation")
    fields.update(over)
    return CounterfactualRecord(task, concept, **fields)


def test_record_types_its_fields_and_round_trips_byte_for_byte():
    llm = CounterfactualRecord("T/1", "if_else_flip", "rejected", "concept check: x", "a\n", "b\n", [[0, 1]],
                               "concept", "llm", attempts=2, usage={"prompt_tokens": 3, "completion_tokens": 4})
    assert llm.concept is Concept.IF_ELSE_FLIP and llm.stage is Stage.CONCEPT and llm.changed_spans == ((0, 1),)
    assert llm.key == ("T/1", "if_else_flip")
    line = llm.to_json()
    assert list(json.loads(line)) == ["task_id", "concept", "status", "reason", "original", "code", "changed_spans",
                                      "stage", "generator", "attempts", "usage"]
    assert CounterfactualRecord.from_dict(json.loads(line)).to_json() == line
    rule = record("T/2")
    assert "attempts" not in rule.to_dict() and rule.to_dict()["generator"] == "rule"


def test_lines_written_before_stages_existed_still_load():
    records = read_records(FIXTURE)
    assert len(records) == 11 and {r.stage for r in records} == {""}
    assert all(r.generator == "rule" for r in records)


def test_write_then_resume_skips_done_pairs_and_drops_torn_tail(tmp_path):
    path = tmp_path / "out.jsonl"
    with RecordWriter(path) as w:
        w.write(record("t1"))
        w.write(record("t2"))
    with open(path, "a") as handle:  # a kill in the middle of a write
        handle.write('{"task_id": "t3", "conc')
    with RecordWriter(path, resume=True) as w:
        assert w.done == {("t1", "name_random"), ("t2", "name_random")}
        w.write(record("t3"))
    assert [r.task_id for r in read_records(path)] == ["t1", "t2", "t3"]


def test_resume_reads_the_output_once(tmp_path, monkeypatch):
    """The kept records and the cut of a torn tail come from one read, so they cannot disagree."""
    import builtins
    import io
    import os

    path = tmp_path / "out.jsonl"
    with RecordWriter(path) as w:
        w.write_many([record("t1"), record("t2")])
    with open(path, "a") as handle:
        handle.write('{"task_id": "t3", "conc')
    real_open, reads = io.open, []

    def spy(file, mode="r", *args, **kwargs):  # pathlib reads through io.open, the writer through open
        if not isinstance(file, int) and os.fspath(file) == str(path) and "a" not in mode:
            reads.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(builtins, "open", spy)
    with RecordWriter(path, resume=True) as w:
        assert [r.task_id for r in w.existing] == ["t1", "t2"]
    monkeypatch.undo()
    assert reads == ["rb"]
    assert path.read_bytes() == (record("t1").to_json() + "\n" + record("t2").to_json() + "\n").encode()


def test_retain_drops_earlier_lines(tmp_path):
    path = tmp_path / "out.jsonl"
    with RecordWriter(path) as w:
        w.write_many([record("t1"), record("t2")])
    with RecordWriter(path, resume=True) as w:
        w.retain([r for r in w.existing if r.task_id == "t1"])
        w.write(record("t3"))
    assert [r.task_id for r in read_records(path)] == ["t1", "t3"]


def test_existing_file_is_refused_unless_resume_or_overwrite(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(record("t1").to_json() + "\n")
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        RecordWriter(path).open()
    assert [r.task_id for r in read_records(path)] == ["t1"]
    with RecordWriter(path, overwrite=True) as w:
        w.write(record("t9"))
    assert [r.task_id for r in read_records(path)] == ["t9"]
    with pytest.raises(ValueError, match="exclude each other"):
        check_output_path(path, resume=True, overwrite=True)


def test_unwritable_output_fails_at_once_naming_the_folder(tmp_path):
    start = time.monotonic()
    with pytest.raises(PermissionError, match=r"cannot write the output /proc/out.jsonl: its folder /proc"):
        check_output_path("/proc/out.jsonl")
    assert time.monotonic() - start < 2
    with pytest.raises(PermissionError, match="it is a folder"):
        check_output_path(tmp_path)


def test_corrupt_complete_line_names_the_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(record("t1").to_json() + "\nnot json\n")
    with pytest.raises(ValueError, match=r"out.jsonl:2: not valid JSON \(Expecting value at column 1\)"):
        RecordWriter(path, resume=True).open()


def test_write_before_open_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        RecordWriter(tmp_path / "o.jsonl").write(record("t"))


def test_sort_records_puts_input_order_first_then_unknown_keys():
    rows = [record("b"), record("x"), record("a", "if_else_flip"), record("a")]
    order = [("a", "if_else_flip"), ("a", "name_random"), ("b", "name_random")]
    assert [r.key for r in sort_records(rows, order)] == order + [("x", "name_random")]
