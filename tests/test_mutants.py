"""Near-miss mutants at the concept's sites (``procure mutate``): the pure operators, the run, the CLI, resume, and
an independent re-run of the killed mutants."""

from __future__ import annotations

import ast
import json

import pytest
from mutant_rows import BODY, SIGNATURE, TESTS

from procure_trl.cli import main
from procure_trl.concepts import Concept
from procure_trl.execution import ExecutionJob, Executor
from procure_trl.perturb.mutants import CLASSIC_KINDS, CONCEPT_KINDS, MutationKind, mutate_pair, mutation_kinds
from procure_trl.perturb.mutate import MutationConfig, generate_mutants, killed_pairs, mutation_summary
from procure_trl.perturb.records import CounterfactualRecord, read_records
from procure_trl.perturbations import perturb
from procure_trl.problems import Problem, load_problems, write_jsonl
from procure_trl.statuses import NOT_APPLICABLE, VALID, Stage
from procure_trl.validation.pipeline import check_spans

PROGRAM = SIGNATURE + BODY
PROBLEM = Problem("Toy/0", "", PROGRAM, TESTS, "clip_sum")


def counterfactual(concept: Concept, seed: int = 0):
    result = perturb(PROGRAM, concept, seed=seed, protected_names=("clip_sum",))
    assert result.applied, result.reason
    return result


def changed(source: str, mutant) -> list[str]:
    return [mutant.code[s:e] for s, e in mutant.changed_spans]


@pytest.mark.parametrize("concept", list(Concept))
def test_every_kind_of_every_concept_parses_and_changes_only_its_spans(concept):
    cf = counterfactual(concept)
    applied = []
    for kind in mutation_kinds(concept):
        pair = mutate_pair(PROGRAM, cf.code, concept, cf.changed_spans, kind, seed=1)
        if not pair.applied:
            assert pair.reason
            continue
        applied.append(kind)
        for source, mutant in ((PROGRAM, pair.original), (cf.code, pair.counterfactual)):
            tree = ast.parse(mutant.code)
            assert ast.dump(tree) != ast.dump(ast.parse(source))
            assert check_spans(source, mutant.code, [list(s) for s in mutant.changed_spans]) is None
    assert CONCEPT_KINDS[concept] in applied  # the concept's own operator always finds its site here


def test_negated_condition_keeps_the_branches_and_takes_the_other_condition():
    cf = counterfactual(Concept.IF_ELSE_FLIP)
    pair = mutate_pair(PROGRAM, cf.code, Concept.IF_ELSE_FLIP, cf.changed_spans, MutationKind.NEGATED_CONDITION)
    o_if = next(n for n in ast.walk(ast.parse(pair.original.code)) if isinstance(n, ast.If))
    c_if = next(n for n in ast.walk(ast.parse(cf.code)) if isinstance(n, ast.If))
    p_if = next(n for n in ast.walk(ast.parse(PROGRAM)) if isinstance(n, ast.If))
    assert ast.dump(o_if.test) == ast.dump(c_if.test)  # the original's condition, negated (the flip's negation)
    assert [ast.dump(s) for s in o_if.body] == [ast.dump(s) for s in p_if.body]  # branches not swapped
    m_if = next(n for n in ast.walk(ast.parse(pair.counterfactual.code)) if isinstance(n, ast.If))
    assert ast.dump(m_if.test) == ast.dump(p_if.test)


def test_dependent_swap_swaps_statements_that_depend_on_each_other():
    cf = counterfactual(Concept.INDEPENDENT_SWAP)
    pair = mutate_pair(PROGRAM, cf.code, Concept.INDEPENDENT_SWAP, cf.changed_spans, MutationKind.DEPENDENT_SWAP)
    assert pair.applied, pair.reason
    a, b = [ast.parse(text.strip()).body[0] for text in changed(PROGRAM, pair.original)]
    names = lambda s, ctx: {n.id for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}  # noqa
    stores_a, stores_b = names(a, ast.Store), names(b, ast.Store)
    assert stores_a & (names(b, ast.Load) | stores_b) or stores_b & names(a, ast.Load)
    assert sorted(changed(PROGRAM, pair.original)) == sorted(changed(cf.code, pair.counterfactual))


def test_name_collision_reads_the_same_other_variable_in_both_programs():
    cf = counterfactual(Concept.NAME_RANDOM)
    rename = {r["old"]: r["new"] for r in cf.details["renames"]}
    pair = mutate_pair(PROGRAM, cf.code, Concept.NAME_RANDOM, cf.changed_spans, MutationKind.NAME_COLLISION)
    (o_new,), (c_new,) = changed(PROGRAM, pair.original), changed(cf.code, pair.counterfactual)
    assert rename[o_new] == c_new  # the counterfactual reads the counterfactual's name of the same variable


def test_classic_operators_edit_the_same_token_alike():
    cf = counterfactual(Concept.NAME_SHUFFLE)
    for kind in CLASSIC_KINDS:
        pair = mutate_pair(PROGRAM, cf.code, Concept.NAME_SHUFFLE, cf.changed_spans, kind)
        if pair.applied:
            assert changed(PROGRAM, pair.original) == changed(cf.code, pair.counterfactual)


def test_a_kind_without_site_is_not_applicable_with_a_reason():
    cf = counterfactual(Concept.NAME_RANDOM)
    pair = mutate_pair(PROGRAM, cf.code, Concept.NAME_RANDOM, cf.changed_spans, MutationKind.BOOLEAN)
    assert not pair.applied and "boolean" in pair.reason  # the program holds no and/or/True/False


def test_every_concept_has_its_own_operator():
    assert set(CONCEPT_KINDS) == set(Concept)


def _rows() -> list[CounterfactualRecord]:
    rows = []
    for concept in Concept:
        cf = counterfactual(concept)
        rows.append(CounterfactualRecord(PROBLEM.task_id, concept, VALID, original=PROGRAM, code=cf.code,
                                         changed_spans=cf.changed_spans, stage=Stage.PASSED, sites=cf.sites))
    return rows


def test_run_keeps_killed_mutants_only_and_a_rerun_agrees():
    lines = generate_mutants(_rows(), {PROBLEM.task_id: PROBLEM}, MutationConfig(num_workers=1, progress=False))
    assert all(line.mutation and line.mutant_of in ("original", "counterfactual") for line in lines)
    with Executor(num_workers=1) as executor:
        sources = [PROGRAM] + [row.code for row in _rows()]
        assert all(r.passed for r in executor.run([ExecutionJob(code, TESTS) for code in sources]))
        for line in lines:
            if line.status == NOT_APPLICABLE:
                continue
            passed = executor.run([ExecutionJob(line.code, TESTS)])[0].passed
            assert passed == (line.stage == Stage.SURVIVED), (line.mutation, line.reason)
    summary = mutation_summary(lines)
    assert sum(c["killed"] for c in summary.values()) == len(killed_pairs(lines)) > 0
    assert {concept for (concept, _), c in summary.items() if c["killed"]} == {c.value for c in Concept}


def test_mutate_cli_writes_records_a_table_and_resumes_to_the_same_bytes(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl([PROBLEM], problems)
    cf = tmp_path / "cf.jsonl"
    assert main(["perturb", str(problems), "--output", str(cf), "--no-progress", "--num-workers", "1"]) == 0
    out = tmp_path / "mutants.jsonl"
    args = ["mutate", "--counterfactuals", str(cf), "--output", str(out), "--problems", str(problems),
            "--num-workers", "1", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "negated_condition" in text and "killed pairs" in text
    first = out.read_bytes()
    lines = read_records(out)
    assert lines and all(json.loads(raw)["mutation"] for raw in first.splitlines())
    # drop the second half and a torn line: --resume redoes what is missing and ends with the same bytes
    raw = first.splitlines(keepends=True)
    out.write_bytes(b"".join(raw[: len(raw) // 2]) + raw[len(raw) // 2][:10])
    assert main(args + ["--resume"]) == 0
    assert out.read_bytes() == first
    assert main(args) == 2  # an existing output is refused without --resume/--overwrite


def test_mutate_refuses_rows_without_tests(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl([PROBLEM], problems)
    cf = tmp_path / "cf.jsonl"
    assert main(["perturb", str(problems), "--output", str(cf), "--no-progress", "--num-workers", "1"]) == 0
    assert main(["mutate", "--counterfactuals", str(cf), "--output", str(tmp_path / "m.jsonl")]) == 2
    assert "--problems" in capsys.readouterr().err


def test_mutate_lists_bad_input_rows_and_strict_fails_on_them(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl([PROBLEM], problems)
    source = tmp_path / "source.jsonl"
    source.write_text(problems.read_text() + "{not json\n")  # a bad row: perturb keeps it as stage input
    cf = tmp_path / "cf.jsonl"
    assert main(["perturb", str(source), "--output", str(cf), "--no-progress", "--num-workers", "1"]) == 0
    bad = [r for r in read_records(cf) if r.stage == Stage.INPUT]
    assert len({r.task_id for r in bad}) == 1  # one line per concept, one bad row
    args = ["mutate", "--counterfactuals", str(cf), "--problems", str(problems), "--num-workers", "1",
            "--no-progress", "--kinds", "negated_condition"]
    assert main([*args, "--output", str(tmp_path / "a.jsonl")]) == 0
    assert "bad input: 1 row(s)" in capsys.readouterr().out
    assert main([*args, "-o", str(tmp_path / "b.jsonl"), "--strict"]) == 1
    captured = capsys.readouterr()
    assert "bad input: 1 row(s)" in captured.out and "--strict" in captured.err
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()  # the rows are written alike


@pytest.mark.slow
def test_killed_humaneval_mutants_fail_when_rerun_independently(tmp_path):
    problems = load_problems("humaneval")[:25]
    path = tmp_path / "problems.jsonl"
    write_jsonl(problems, path)
    cf = tmp_path / "cf.jsonl"
    assert main(["perturb", str(path), "--output", str(cf), "--no-progress", "--num-workers", "2"]) == 0
    rows = [r for r in read_records(cf) if r.status == VALID]
    by_id = {p.task_id: p for p in problems}
    lines = generate_mutants(rows, by_id, MutationConfig(num_workers=2, progress=False))
    pairs = killed_pairs(lines)
    assert len(pairs) >= 25
    with Executor(num_workers=2) as executor:  # fresh workers, the default (longer) timeout
        results = executor.run([ExecutionJob(m.code, by_id[m.task_id].tests) for pair in pairs for m in pair])
    assert sum(r.passed for r in results) == 0
