"""Counterfactual programs for evaluation: ``procure perturb`` output, checked against the benchmark.

The file is the perturbation engine's JSONL (one :class:`~procure_trl.perturb.records.CounterfactualRecord` per
(problem, concept)); it is parsed by the same reader the dataset builder uses
(:func:`procure_trl.perturb.records.read_records`), so both agree on what a valid line is. Only ``valid`` lines
are evaluated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from procure_trl.concepts import AnyConcept
from procure_trl.errors import UserError
from procure_trl.perturb.records import CounterfactualRecord, read_records
from procure_trl.problems import Problem
from procure_trl.statuses import VALID

__all__ = ["load_counterfactual_variants", "check_variants", "keep_concepts"]


def load_counterfactual_variants(
    path: str | os.PathLike,
    problems: Mapping[str, Problem],
    benchmark: str = "the benchmark",
    concepts: Sequence[AnyConcept] | None = None,
) -> list[CounterfactualRecord]:
    """The valid counterfactuals of ``path`` whose concept is in ``concepts`` (default: all).

    Args:
        path: a ``procure perturb`` JSONL file.
        problems: every problem of the benchmark, by ``task_id`` (before any ``--limit``).
        benchmark: the benchmark's name, for error messages.
        concepts: keep only these concepts.

    Raises:
        ValueError: a malformed line (with its line number), a file without valid lines, task ids that are
            not in ``problems``, or originals that do not start with their problem's prompt (the file was made
            for another benchmark, or another version of it).
    """
    records = read_records(path)
    variants = [r for r in records if r.status == VALID]
    if not variants:
        raise UserError(
            f"{path}: no 'valid' counterfactual among its {len(records)} line(s); nothing to evaluate "
            "(check the perturbation run's rejection reasons)"
        )
    check_variants(variants, problems, str(path), benchmark)
    return keep_concepts(variants, concepts)


def keep_concepts(
    variants: Sequence[CounterfactualRecord], concepts: Sequence[AnyConcept] | None
) -> list[CounterfactualRecord]:
    """The ``variants`` whose concept is in ``concepts`` (all of them when ``concepts`` is ``None``)."""
    if concepts is None:
        return list(variants)
    wanted = {getattr(c, "value", c) for c in concepts}  # by name: a user concept read back has no rules
    return [v for v in variants if v.concept.value in wanted]


def check_variants(
    variants: Sequence[CounterfactualRecord], problems: Mapping[str, Problem], source: str, benchmark: str
) -> None:
    """Refuse counterfactuals that do not belong to ``problems``: unknown task ids, or originals that do not
    start with their problem's prompt (made from another version of the benchmark).

    Args:
        variants: the counterfactual records.
        problems: every problem of the benchmark, by ``task_id``.
        source: where the records come from (a file or a dataset), for the message.
        benchmark: the benchmark's name, for the message.
    """
    unknown = sorted({v.task_id for v in variants if v.task_id not in problems})
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UserError(
            f"{source}: {len(unknown)} task id(s) are not in {benchmark} ({shown}); it was made for another "
            "benchmark: pass the --benchmark it was generated from, or regenerate it with `procure perturb`"
        )
    # Same task ids, different text (e.g. mbpp vs mbpp-sanitized): the prompt cut would land in the wrong place.
    mismatched = sorted({v.task_id for v in variants if not v.original.startswith(problems[v.task_id].prompt)})
    if mismatched:
        shown = ", ".join(mismatched[:5]) + (", ..." if len(mismatched) > 5 else "")
        raise UserError(
            f"{source}: the original program of {len(mismatched)} task(s) ({shown}) does not start with that "
            f"problem's prompt in {benchmark}; it was made from another version of the benchmark "
            "(e.g. mbpp vs mbpp-sanitized): pass the --benchmark it was generated from"
        )
