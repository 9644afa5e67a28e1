"""Which tasks and counterfactual rows an evaluation scores: the problems of a benchmark or of a dataset split,
the valid counterfactual rows given for them, and the rows that can be cut into a reference and a counterfactual
prompt (:func:`cut_rows`), with every row not scored accounted for (:func:`row_accounting`).

:func:`select_rows` runs it all, the refusals of :mod:`procure_trl.evaluation.guards` included.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from procure_trl.concepts import AnyConcept, Concept, concept_names_in
from procure_trl.dataset.prompt_format import prompt_split
from procure_trl.dataset.rows import load_dataset_split, records_from_rows
from procure_trl.errors import UserError
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.counterfactuals import check_variants, keep_concepts, load_counterfactual_variants
from procure_trl.evaluation.dependence import row_dependence
from procure_trl.evaluation.guards import check_adapter_base, check_near_duplicate_overlap, check_train_overlap
from procure_trl.evaluation.prompts import TruncationError, counterfactual_prompt_pair
from procure_trl.evaluation.results import PromptRow
from procure_trl.perturb.records import CounterfactualRecord
from procure_trl.problems import Problem, benchmark_of, load_problems

logger = logging.getLogger(__name__)

__all__ = ["Selection", "benchmarks_of", "cut_rows", "row_accounting", "select_rows"]


@dataclass
class Selection:
    """The tasks and rows of one evaluation.

    Attributes:
        problems: the problems the tasks are looked up in, by task id.
        selected: the tasks scored (in order; ``--limit`` applied).
        rows: the counterfactual rows cut into two prompts each.
        skipped: the rows that could not be cut (``task_id``, ``concept``, ``reason``, ``message``).
        accounting: per concept, rows given, scored and skipped by reason (:func:`row_accounting`).
    """

    problems: dict[str, Problem]
    selected: list[Problem]
    rows: list[PromptRow]
    skipped: list[dict[str, str]]
    accounting: dict[str, dict[str, Any]]


def select_rows(config: EvaluationConfig, problems: Sequence[Problem] | None = None) -> Selection:
    """The tasks and counterfactual rows ``config`` scores, after the adapter guards (base model, training tasks and
    their near duplicates, unless allowed)."""
    if config.adapter and not config.allow_base_mismatch:
        check_adapter_base(config.adapter, config.model)
    loader = _dataset_tasks if config.dataset else _benchmark_tasks
    all_problems, variants = loader(config, problems)
    selected = all_problems[: config.limit] if config.limit else all_problems
    if config.adapter and not config.allow_train_overlap:
        check_train_overlap(config.adapter, [p.task_id for p in selected])
        check_near_duplicate_overlap(config.adapter, selected, all_problems)
    by_id = {p.task_id: p for p in all_problems}
    selected_ids = {p.task_id for p in selected}
    given = [v for v in variants if v.task_id in selected_ids]
    rows, skipped = cut_rows(given, by_id, config)
    for item in skipped:
        logger.info("skipped %s / %s: %s", item["task_id"], item["concept"], item["message"])
    accounting = row_accounting([v.concept for v in given], [r.concept for r in rows], skipped)
    return Selection(by_id, list(selected), rows, skipped, accounting)


def _prompt_line_count(problem: Problem) -> int:
    return len(problem.prompt.splitlines())


def cut_rows(
    variants: Sequence[CounterfactualRecord], problems: dict[str, Problem], config: EvaluationConfig
) -> tuple[list[PromptRow], list[dict[str, str]]]:
    """The rows that can be cut (:func:`~procure_trl.evaluation.prompts.counterfactual_prompt_pair`), and for every
    other one its ``task_id``, ``concept``, ``reason`` code (a key of ``SKIP_REASONS``) and ``message``.

    Args:
        variants: valid counterfactual rows.
        problems: their problems by task id (the prompt's line count is always kept in both prompts).
        config: ``line_fraction`` and ``if_else_at_branch`` of the cut.
    """
    rows, skipped = [], []
    for variant in variants:
        if variant.code is None:  # load_counterfactual_variants keeps valid rows, which hold their code
            raise ValueError(f"{variant.task_id} ({variant.concept.value}): a valid counterfactual without code")
        try:
            pair = counterfactual_prompt_pair(
                original=variant.original,
                code=variant.code,
                concept=variant.concept,
                changed_spans=variant.changed_spans,
                prompt_line_count=_prompt_line_count(problems[variant.task_id]),
                line_fraction=config.line_fraction,
                if_else_at_branch=config.if_else_at_branch,
            )
        except TruncationError as exc:
            skipped.append(
                {"task_id": variant.task_id, "concept": variant.concept.value, "reason": exc.reason,
                 "message": str(exc)}
            )
            continue
        # From the raw cuts, before any prompt format: what is left of each program to complete.
        facts = row_dependence(variant.original, variant.code, pair.reference, pair.counterfactual,
                               variant.changed_spans)
        task_prompt = problems[variant.task_id].prompt
        heads = (prompt_split(task_prompt, variant.original), prompt_split(task_prompt, variant.code,
                                                                          variant.changed_spans))
        rows.append(PromptRow(variant.task_id, variant.concept, pair.reference, pair.counterfactual,
                              variant.sites or 1, variant.variant, facts.remainder_differs, facts.dependent, *heads))
    return rows, skipped


def row_accounting(
    given: Sequence[AnyConcept | str], scored: Sequence[AnyConcept | str], skipped: Sequence[dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Per concept: counterfactual rows given, scored, and skipped by reason code.

    Each count is taken from its own list, so a report where ``scored + skipped != given`` shows a row lost
    on the way.

    Args:
        given: the concept of every valid counterfactual row handed to the harness.
        scored: the concept of every row that was cut and scored.
        skipped: the rows that were not scored, each with its ``concept`` and ``reason`` code.
    """
    given_counts = Counter(concept_names_in([c])[0] for c in given)
    scored_counts = Counter(concept_names_in([c])[0] for c in scored)
    out: dict[str, dict[str, Any]] = {}
    # The concepts present (user-defined ones too), built-in ones first.
    for name in concept_names_in([*given, *scored, *(s["concept"] for s in skipped)]):
        reasons = Counter(s["reason"] for s in skipped if s["concept"] == name)
        if given_counts[name] or scored_counts[name] or reasons:
            out[name] = {"given": given_counts[name], "scored": scored_counts[name],
                         "skipped": dict(sorted(reasons.items()))}
    return out


def _benchmark_tasks(
    config: EvaluationConfig, problems: Sequence[Problem] | None
) -> tuple[list[Problem], list[CounterfactualRecord]]:
    """Every problem of the benchmark, and the valid counterfactuals of ``config.counterfactuals``."""
    if config.benchmark is None:  # EvaluationConfig sets humaneval when no --dataset is given
        raise ValueError("no --benchmark to evaluate (and no --dataset)")
    if problems is None:
        problems = load_problems(config.benchmark, split=config.split)
    problems = list(problems)
    variants: list[CounterfactualRecord] = []
    if config.counterfactuals:
        concepts = Concept.parse_list(config.concepts) if config.concepts else None
        # Checked against the whole benchmark, so that --limit never hides a file made for another one.
        by_id = {p.task_id: p for p in problems}
        variants = load_counterfactual_variants(config.counterfactuals, by_id, config.benchmark, concepts)
    return problems, variants




def benchmarks_of(task_ids: Sequence[str], dataset: str) -> list[str]:
    names, unknown = [], []
    for task_id in task_ids:
        name = benchmark_of(task_id)
        if name is None:
            unknown.append(task_id)
        elif name not in names:
            names.append(name)
    if unknown:
        raise UserError(
            f"dataset {dataset}: task {unknown[0]!r} comes from no known benchmark; pass --benchmark with the "
            "problems (and tests) of its tasks, e.g. a problems JSONL"
        )
    return names


def _dataset_tasks(
    config: EvaluationConfig, problems: Sequence[Problem] | None
) -> tuple[list[Problem], list[CounterfactualRecord]]:
    """The problems of the tasks in ``config.split`` of ``config.dataset`` (in the dataset's order) and the
    counterfactuals of that split; the tests come from the benchmarks (``config.benchmark``, or those of the
    task ids)."""
    if not config.dataset or config.split is None:  # select_rows calls this with a dataset, whose split is set
        raise ValueError("a dataset evaluation needs --dataset and its --split")
    split = load_dataset_split(config.dataset, config.dataset_config, config.split)
    task_ids, variants = records_from_rows(split)
    source = f"dataset {config.dataset} (config {config.dataset_config}, split {config.split})"
    if not task_ids:
        raise UserError(f"{source} has no rows")
    if problems is None:
        benchmarks = config.benchmark.split(",") if config.benchmark else benchmarks_of(task_ids, str(config.dataset))
        config.benchmark = ",".join(benchmarks)  # the report names what the tests came from
        problems = [p for name in benchmarks for p in load_problems(name.strip())]
    config.benchmark = config.benchmark or "the given problems"
    by_id = {p.task_id: p for p in problems}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        raise UserError(
            f"{source}: {len(missing)} task(s) ({', '.join(missing[:5])}) are not in {config.benchmark}; pass the "
            "--benchmark the dataset was built from"
        )
    check_variants(variants, by_id, source, str(config.benchmark))
    if config.concepts:
        variants = keep_concepts(variants, Concept.parse_list(config.concepts))
    return [by_id[t] for t in task_ids], variants
