"""``procure build --mutants``: the killed mutant pairs of ``procure mutate`` as the ``mutants`` config, linked to the
other configs by ``pair_id``, split with their tasks, counted on the card, and read back as the pairs they came
from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from procure_trl.cli import main
from procure_trl.dataset.mutant_rows import MUTANT_COLUMNS, mutant_pairs_from_rows
from procure_trl.dataset.prompt_format import row_program
from procure_trl.dataset.rows import load_dataset_dict
from procure_trl.perturb.mutate import MutationConfig, generate_mutants, killed_pairs, mutation_summary
from procure_trl.perturb.records import read_records, write_records
from procure_trl.problems import problems_of_tasks
from procure_trl.statuses import VALID
from procure_trl.validation.pipeline import check_spans

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    """The ``procure mutate`` lines of the fixture's valid counterfactuals, written to a file."""
    rows = [r for r in read_records(FIXTURE) if r.status == VALID]
    problems = problems_of_tasks([r.task_id for r in rows])
    lines = generate_mutants(rows, problems, MutationConfig(num_workers=2, progress=False))
    path = tmp_path_factory.mktemp("mutants") / "mutants.jsonl"
    write_records(lines, path)
    assert len(killed_pairs(lines)) >= 5
    return path, lines


def _build(out: Path, *extra: str) -> int:
    return main(["build", "--input-jsonl", str(FIXTURE), "--benchmarks", "humaneval,mbpp", "--test-size", "0.34",
                 "--output-dir", str(out), *extra])


def test_killed_pairs_become_the_mutants_config_linked_by_pair_id_and_split_with_their_tasks(tmp_path, mutants):
    path, lines = mutants
    assert _build(tmp_path, "--mutants", str(path)) == 0
    every = load_dataset_dict(str(tmp_path), "all")
    loaded = load_dataset_dict(str(tmp_path), "mutants")
    rows = [row for split in loaded.values() for row in split.to_list()]
    assert len(rows) == len(killed_pairs(lines))  # every fixture task is in the dataset: no pair left out
    for split, part in loaded.items():
        tasks = set(every[split]["task_id"])
        programs = {(r["pair_id"], row_program(r)[0]) for r in every[split].to_list()}
        for row in part.to_list():
            assert list(row) == list(MUTANT_COLUMNS)
            assert row["task_id"] in tasks  # the mutants follow their task into its split
            assert (row["pair_id"], row["original"]) in programs and (row["pair_id"], row["counterfactual"]) in programs
            for side in ("original", "counterfactual"):
                mutant, spans = row[f"{side}_mutant"], row[f"{side}_mutant_spans"]
                assert mutant != row[side] and spans
                assert check_spans(row[side], mutant, spans) is None  # outside its spans the mutant is its source
    # read back, the rows are the killed pairs of the file
    back = {(o.task_id, o.concept.value, o.mutation, o.code, c.code) for o, c in mutant_pairs_from_rows(rows)}
    assert back == {(o.task_id, o.concept.value, o.mutation, o.code, c.code) for o, c in killed_pairs(lines)}


def test_the_card_counts_killed_and_survived_per_concept_and_kind(tmp_path, mutants):
    path, lines = mutants
    assert _build(tmp_path, "--mutants", str(path)) == 0
    card = (tmp_path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert "mutants" in [c["config_name"] for c in meta["configs"]]
    for (concept, kind), counts in mutation_summary(lines).items():
        cells = " | ".join(str(counts[k]) for k in ("pairs", "killed", "survived", "timed_out", "not_applicable"))
        assert f"| `{concept}` | {kind} | {cells} |" in card
    assert "| `mutants` |" not in card  # not a config of program rows


def test_mutants_of_other_counterfactuals_are_refused_in_one_line(tmp_path, mutants, capsys):
    path, lines = mutants
    other = [replace(r, counterfactual=(r.counterfactual or "") + "\n# another program\n") for r in lines]
    bad = tmp_path / "other.jsonl"
    write_records(other, bad)
    assert _build(tmp_path / "out", "--mutants", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not in the dataset" in err
    assert _build(tmp_path / "out2", "--mutants", str(FIXTURE)) == 2  # counterfactuals, not mutants
    assert "holds no mutant rows" in capsys.readouterr().err
