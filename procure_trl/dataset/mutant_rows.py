"""The ``mutants`` config of a built dataset: the killed near-miss mutant pairs of ``procure mutate``, one row per
pair, linked to the dataset's other configs by ``pair_id``.

==============================  ======================  =====================================================
column                          type                    meaning
==============================  ======================  =====================================================
``task_id``                     string                  benchmark task
``pair_id``                     string                  the ``pair_id`` of the original and counterfactual rows
                                                        of the other configs (task + hash of the original)
``concept``                     string                  the counterfactual's concept
``mutation``                    string                  the mutation kind (``procure mutate``'s operators)
``sites`` / ``variant``         int32 (null)            those of the counterfactual row
``original``                    string                  the original program (correct)
``counterfactual``              string                  the counterfactual program (correct)
``original_mutant``             string                  the mutant of the original (fails a test)
``counterfactual_mutant``       string                  the same mutation in the counterfactual (fails a test)
``original_mutant_spans``       list of [start, end)    the characters of ``original_mutant`` the mutation changed
``counterfactual_mutant_spans`` list of [start, end)    the same for ``counterfactual_mutant``
==============================  ======================  =====================================================

Only killed pairs (both mutants fail a test) become rows: a survivor is no bug. The card counts killed, survived,
timed-out and not-applicable pairs per concept and kind from the whole ``procure mutate`` output
(:func:`~procure_trl.perturb.mutate.mutation_summary`). Rows follow their task into ``train`` or ``test``, so
``--task repair|detect --dataset DIR --split test`` scores held-out tasks only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from procure_trl.concepts import ORIGINAL, Concept
from procure_trl.dataset.prompt_format import row_program
from procure_trl.errors import UserError
from procure_trl.perturb.records import AST_GREP, CounterfactualRecord, read_records
from procure_trl.statuses import VALID, Stage

__all__ = ["MUTANTS_CONFIG", "MUTANT_COLUMNS", "mutant_features", "mutant_pairs_from_rows", "mutant_rows",
           "read_mutant_files"]

#: The config (subset) name of the mutant rows.
MUTANTS_CONFIG = "mutants"
MUTANT_COLUMNS = ("task_id", "pair_id", "concept", "mutation", "sites", "variant", "original", "counterfactual",
                  "original_mutant", "counterfactual_mutant", "original_mutant_spans", "counterfactual_mutant_spans")


def read_mutant_files(paths: Sequence[str | Path]) -> list[CounterfactualRecord]:
    """Every line of the ``procure mutate`` files ``paths``; a file without mutant lines is refused (one line)."""
    records = []
    for path in paths:
        lines = read_records(path)
        if not any(r.mutation for r in lines):
            raise UserError(f"--mutants {path} holds no mutant rows; give the output of `procure mutate` (the "
                             "counterfactuals themselves go to --input-jsonl)")
        records += lines
    return records


def _counterfactual_programs(rows: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """pair_id -> the whole programs of the counterfactual rows of ``rows`` (either prompt format)."""
    out: dict[str, set[str]] = {}
    for row in rows:
        if row["concept"] != ORIGINAL:
            out.setdefault(row["pair_id"], set()).add(row_program(row)[0])
    return out


def mutant_rows(records: Iterable[CounterfactualRecord], rows: Sequence[Mapping[str, Any]],
                source: str = "--mutants") -> tuple[list[dict[str, Any]], int]:
    """The ``mutants`` config rows of the killed pairs in ``records``, and how many killed pairs were left out
    because their task is not in the dataset (``rows``: its other rows, e.g. a build with ``--limit``).

    Raises:
        ValueError: a killed pair of a task in the dataset whose counterfactual is not among its rows (the mutants
            were made from other counterfactuals than the dataset's).
    """
    from procure_trl.dataset.rows import pair_id_for
    from procure_trl.perturb.mutate import killed_pairs

    programs = _counterfactual_programs(rows)
    tasks = {r["task_id"] for r in rows}
    out, left_out = [], 0
    for original, counterfactual in killed_pairs(records):
        if original.task_id not in tasks:
            left_out += 1
            continue
        pair_id = pair_id_for(original.task_id, original.original)
        if original.counterfactual not in programs.get(pair_id, ()):
            raise UserError(
                f"{source}: the mutants of {original.task_id} / {original.concept.value} mutate a counterfactual that "
                "is not in the dataset; run `procure mutate` on the counterfactuals the dataset is built from")
        out.append({
            "task_id": original.task_id, "pair_id": pair_id, "concept": original.concept.value,
            "mutation": original.mutation, "sites": original.sites, "variant": original.variant,
            "original": original.original, "counterfactual": original.counterfactual,
            "original_mutant": original.code, "counterfactual_mutant": counterfactual.code,
            "original_mutant_spans": [list(s) for s in original.changed_spans],
            "counterfactual_mutant_spans": [list(s) for s in counterfactual.changed_spans],
        })
    return out, left_out


def mutant_features() -> Any:
    """The ``datasets.Features`` of the ``mutants`` config."""
    from datasets import Features, List, Value

    spans = List(List(Value("int32"), length=2))
    text = ("original", "counterfactual", "original_mutant", "counterfactual_mutant")
    return Features({"task_id": Value("string"), "pair_id": Value("string"), "concept": Value("string"),
                     "mutation": Value("string"), "sites": Value("int32"), "variant": Value("int32"),
                     **{name: Value("string") for name in text},
                     "original_mutant_spans": spans, "counterfactual_mutant_spans": spans})


def mutant_pairs_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[tuple[CounterfactualRecord,
                                                                            CounterfactualRecord]]:
    """The inverse of :func:`mutant_rows`: per row, ``(mutant of the original, mutant of the counterfactual)`` as the
    killed lines ``procure mutate`` wrote (what :func:`~procure_trl.perturb.mutate.killed_pairs` gives)."""
    pairs = []
    for row in rows:
        missing = [c for c in MUTANT_COLUMNS if c not in row]
        if missing:
            raise UserError(f"row {row.get('task_id')}: no column(s) {', '.join(missing)}; load the "
                             f"'{MUTANTS_CONFIG}' config of a dataset built with `procure build --mutants`")
        generator = "rule" if row["concept"] in Concept._value2member_map_ else AST_GREP
        common = {"task_id": row["task_id"], "concept": row["concept"], "status": VALID, "original": row["original"],
                  "stage": Stage.KILLED, "generator": generator, "sites": row.get("sites"),
                  "variant": row.get("variant"), "mutation": row["mutation"], "counterfactual": row["counterfactual"]}
        pairs.append((
            CounterfactualRecord(**common, code=row["original_mutant"], changed_spans=row["original_mutant_spans"],
                                 mutant_of="original"),
            CounterfactualRecord(**common, code=row["counterfactual_mutant"],
                                 changed_spans=row["counterfactual_mutant_spans"], mutant_of="counterfactual"),
        ))
    return pairs
