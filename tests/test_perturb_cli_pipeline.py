"""``procure perturb`` and the rule-based pipeline on a handful of problems (real perturbations + executor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procure_trl.cli import main
from procure_trl.concepts import Concept
from procure_trl.perturb.engine import (
    GenerationConfig,
    derive_seed,
    format_summary_table,
    generate_counterfactuals,
    protected_names,
    summarize,
)
from procure_trl.perturb.records import CounterfactualRecord
from procure_trl.problems import Problem, load_humaneval
from procure_trl.validation import ValidationConfig, Validator, check_concept

FIXTURE = Path(__file__).parent / "fixtures" / "code_contests_sample.jsonl"

TOY = Problem(
    task_id="toy/sum",
    prompt="def score(xs, k):\n",
    solution=(
        "    total = 0\n"
        "    big = 0\n"
        "    for x in xs:\n"
        "        if x > k:\n"
        "            big += 1\n"
        "        else:\n"
        "            total += x\n"
        "    n = len(xs)\n"
        "    total = total * 2\n"
        "    return total + big + n\n"
    ),
    tests="assert score([1, 5, 2], 3) == 10\nassert score([], 0) == 0\nassert score([4], 1) == 2\n",
    entry_point="score",
)


def _write(tmp_path: Path, rows: list[dict | str], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def toy_output(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    source = _write(tmp, [TOY.to_dict()])
    out = tmp / "out.jsonl"
    assert main(
        ["perturb", str(source), "--output", str(out), "--seed", "3", "--num-workers", "2", "--no-progress"]
    ) == 0
    return source, out, [json.loads(line) for line in out.read_text().splitlines()]


def test_one_line_per_problem_and_concept_with_the_documented_fields(toy_output):
    _, _, rows = toy_output
    assert [r["concept"] for r in rows] == [c.value for c in Concept]
    for row in rows:
        assert {"task_id", "concept", "status", "reason", "original", "code", "changed_spans"} <= set(row)
        assert row["task_id"] == "toy/sum" and row["original"] == TOY.program
        assert row["status"] in ("valid", "not_applicable", "rejected")


def test_every_valid_row_passes_its_tests_and_its_concept_check(toy_output):
    import ast

    _, _, rows = toy_output
    valid = [r for r in rows if r["status"] == "valid"]
    assert len(valid) == 5, [(r["concept"], r["reason"]) for r in rows]  # the toy admits all five concepts
    for row in valid:
        namespace: dict = {}
        exec(compile(row["code"] + "\n" + TOY.tests, "<valid>", "exec"), namespace)
        assert check_concept(ast.parse(row["original"]), ast.parse(row["code"]), row["concept"], ("score",)) is None
        code = row["code"]
        assert row["changed_spans"] and all(0 <= s < e <= len(code) for s, e in row["changed_spans"])


def test_same_seed_gives_byte_identical_output_and_another_seed_may_differ(toy_output, tmp_path):
    source, out, _ = toy_output
    again = tmp_path / "again.jsonl"
    assert main(["perturb", str(source), "-o", str(again), "--seed", "3", "--num-workers", "1", "--no-progress"]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_table_is_printed(toy_output, capsys, tmp_path):
    source, _, _ = toy_output
    main(["perturb", str(source), "-o", str(tmp_path / "o.jsonl"), "--concepts", "name_random,if_else_flip",
          "--no-progress", "--num-workers", "1"])
    printed = capsys.readouterr().out
    assert "concept" in printed and "applicable" in printed and "rejected" in printed
    assert "name_random" in printed and "if_else_flip" in printed and "independent_swap" not in printed


def test_bad_rows_are_reported_and_do_not_abort_the_batch(tmp_path, capsys):
    unparsable = dict(TOY.to_dict(), task_id="bad/parse", solution="    return (\n")
    source = _write(tmp_path, [
        dict(TOY.to_dict(), task_id="bad/missing", tests=1),
        "{oops",
        {"task_id": "bad/fields", "prompt": "def f():\n"},
        unparsable,
        TOY.to_dict(),
    ])
    out = tmp_path / "out.jsonl"
    assert main(["perturb", str(source), "-o", str(out), "--concepts", "name_random", "--no-progress",
                 "--num-workers", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["rejected"] * 4 + ["valid"]
    assert "in.jsonl:1" in rows[0]["reason"] and "must be strings" in rows[0]["reason"]
    assert "in.jsonl:2" in rows[1]["reason"] and "not valid JSON" in rows[1]["reason"]
    assert rows[2]["task_id"] == "bad/fields" and "missing field(s)" in rows[2]["reason"]
    assert rows[3]["task_id"] == "bad/parse" and "in.jsonl:4" in rows[3]["reason"]
    assert "does not parse" in rows[3]["reason"] and "fix" in rows[3]["reason"]
    assert all(r["stage"] == "input" for r in rows[:4])
    printed = capsys.readouterr().out
    # the table keeps bad rows apart from rejects and out of "applicable"
    cells = next(line for line in printed.splitlines() if line.startswith("name_random")).split()
    assert cells[:7] == ["name_random", "5", "1", "1", "0", "4", "0"]
    # the console block names every bad row with its file:line and reason
    block = printed[printed.index("bad input: 4 row(s)"):]
    for lineno, reason in ((1, "must be strings"), (2, "not valid JSON (Expecting property name enclosed in double "
                                                     "quotes at column 2)"),
                           (3, "missing field(s)"), (4, "does not parse")):
        assert f"in.jsonl:{lineno}: " in block and reason in block
    # --strict: the same run fails
    assert main(["perturb", str(source), "-o", str(out), "--concepts", "name_random", "--no-progress",
                 "--num-workers", "1", "--overwrite", "--strict"]) == 1
    captured = capsys.readouterr()
    assert "bad input: 4 row(s)" in captured.out and "4 bad input row(s) and --strict" in captured.err


def test_cli_errors_name_the_fix(tmp_path, capsys):
    # a name that is not built in may come from --concept-rules: it is checked once that file is read
    assert main(
        ["perturb", "--benchmark", "humaneval", "-o", str(tmp_path / "o.jsonl"), "--concepts", "name_randm"]
    ) == 2
    err = capsys.readouterr().err
    assert "unknown concept 'name_randm' (did you mean 'name_random'?)" in err and err.count("\n") == 1
    assert main(["perturb", "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "exactly one of INPUT.jsonl or --benchmark" in capsys.readouterr().err
    assert main(["perturb", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_llm_options_are_refused_with_the_rule_generator(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert main(
        ["perturb", "--benchmark", "humaneval", "-o", str(out), "--model", "gpt-4o", "--repair-rounds", "1"]
    ) == 2
    err = capsys.readouterr().err
    assert "--model, --repair-rounds apply to --generator llm only" in err
    assert not out.exists()


def test_help_documents_options_and_output(capsys):
    with pytest.raises(SystemExit):
        main(["perturb", "--help"])
    text = capsys.readouterr().out
    for word in ("--benchmark", "--concepts", "--seed", "--no-validate", "--num-workers", "--generator",
                 "changed_spans", "not_applicable", "PROCURE_MBPP_DIR"):
        assert word in text


def test_no_validate_keeps_produced_programs_unchecked(tmp_path):
    source = _write(tmp_path, [TOY.to_dict()])
    out = tmp_path / "o.jsonl"
    assert main(["perturb", str(source), "-o", str(out), "--no-validate", "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["stage"] == "unvalidated" and r["reason"].startswith("not validated") for r in rows
               if r["status"] == "valid")


def test_codecontests_and_humaneval_end_to_end(monkeypatch, tmp_path):
    monkeypatch.setenv("PROCURE_CODECONTESTS_FILE", str(FIXTURE))
    out = tmp_path / "cc.jsonl"
    assert main(["perturb", "--benchmark", "codecontests", "-o", str(out), "--concepts", "name_random",
                 "--no-progress", "--num-workers", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(r["status"] == "valid" for r in rows) >= 3, rows


def test_library_pipeline_with_shared_validator_and_seed_derivation():
    problems = load_humaneval()[:3]
    with Validator(ValidationConfig(num_workers=2)) as validator:
        records = generate_counterfactuals(problems, GenerationConfig(concepts=[Concept.NAME_RANDOM], progress=False),
                                           validator=validator)
    assert [r.task_id for r in records] == [p.task_id for p in problems]
    assert all(isinstance(r, CounterfactualRecord) for r in records)
    assert summarize(records)["name_random"]["problems"] == 3
    assert derive_seed(0, "a", "name_random") == derive_seed(0, "a", Concept.NAME_RANDOM)
    assert derive_seed(0, "a", "name_random") != derive_seed(1, "a", "name_random")
    assert derive_seed(0, "a", "name_random") != derive_seed(0, "a", "name_shuffle")


def test_protected_names_include_what_the_tests_read():
    problem = Problem("t", "LIMIT = 3\nimport math\ndef f():\n", "    return LIMIT\n",
                      "assert f() == LIMIT and math.pi\n", "f")
    assert protected_names(problem) == ("LIMIT", "f", "math")


def test_summary_table_counts():
    rows = [
        CounterfactualRecord("t", "name_random", "valid"),
        CounterfactualRecord("t", "name_random", "rejected", stage="execution"),
        CounterfactualRecord("t", "name_random", "not_applicable"),
        CounterfactualRecord("in.jsonl:2", "name_random", "rejected", stage="input"),
        CounterfactualRecord("t", "if_else_flip", "valid"),
        CounterfactualRecord("u", "if_else_flip", "rejected", stage="concept"),
        CounterfactualRecord("v", "if_else_flip", "rejected", stage="execution"),
    ]
    lines = format_summary_table(rows).splitlines()
    assert lines[0].split()[:4] == ["concept", "problems", "applicable", "valid"]
    flip = next(line for line in lines if line.startswith("if_else_flip")).split()
    rand = next(line for line in lines if line.startswith("name_random")).split()
    total = next(line for line in lines if line.startswith("total")).split()
    # concept, problems, applicable, valid, rejected, bad input, not applicable, valid/applicable
    assert flip == ["if_else_flip", "3", "3", "1", "2", "0", "0", "33.3%"]
    assert rand == ["name_random", "4", "2", "1", "1", "1", "1", "50.0%"]
    assert total == ["total", "7", "5", "2", "3", "1", "1", "40.0%"]
    assert lines.index(next(line for line in lines if line.startswith("if_else_flip"))) < lines.index(
        next(line for line in lines if line.startswith("name_random")))  # registry order
    # rejects broken down by stage, as in the LLM generator's table; the bad input row is not a reject
    assert lines[-1] == "rejected by stage: execution 2, concept 1"


def test_generator_llm_delegates_to_the_llm_cli(monkeypatch, tmp_path):
    from procure_trl.commands import perturb_llm as llm_cli

    seen = {}

    def fake_run(args, problems, concepts, output):
        seen.update(args=args, problems=problems, concepts=concepts, output=output)
        return 0

    monkeypatch.setattr(llm_cli, "run", fake_run)
    source = _write(tmp_path, [TOY.to_dict(), "{bad json"])
    out = tmp_path / "o.jsonl"
    assert main(["perturb", str(source), "-o", str(out), "--generator", "llm", "--model", "m",
                 "--concepts", "name_random,if_else_flip", "--seed", "5"]) == 0
    # the bad row is passed on too: the LLM side writes its `rejected` lines (tests/test_llm_cli.py)
    from procure_trl.problems import InvalidProblem

    assert seen["problems"][0].task_id == "toy/sum"
    assert isinstance(seen["problems"][1], InvalidProblem) and "not valid JSON" in seen["problems"][1].reason
    assert seen["concepts"] == [Concept.NAME_RANDOM, Concept.IF_ELSE_FLIP]
    assert seen["args"].model == "m" and seen["args"].seed == 5 and seen["args"].output == str(out)
