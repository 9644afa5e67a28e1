"""The append-only JSONL writer: torn tails, resume, refusing to clobber, corrupt lines."""

from __future__ import annotations

import json

import pytest

from procure_trl.llm.output import ResumableJsonlWriter, read_rows


def row(task, concept="name_random"):
    return {"task_id": task, "concept": concept, "status": "valid", "original": "x"}


def test_write_then_resume_skips_done_pairs_and_drops_torn_tail(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(path) as w:
        w.write(row("t1"))
        w.write(row("t2"))
    with open(path, "a") as handle:  # a kill in the middle of a write
        handle.write('{"task_id": "t3", "conc')
    with ResumableJsonlWriter(path, resume=True) as w:
        assert w.done == {("t1", "name_random"), ("t2", "name_random")}
        w.write(row("t3"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["t1", "t2", "t3"]


def test_existing_file_without_resume_is_not_clobbered(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(row("t1")) + "\n")
    with pytest.raises(FileExistsError, match="--resume"):
        ResumableJsonlWriter(path).open()
    assert read_rows(path)[0] == [row("t1")]


def test_corrupt_complete_line_names_the_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(row("t1")) + "\nnot json\n")
    with pytest.raises(ValueError, match=r"out.jsonl:2"):
        ResumableJsonlWriter(path, resume=True).open()


def test_write_before_open_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        ResumableJsonlWriter(tmp_path / "o.jsonl").write(row("t"))
