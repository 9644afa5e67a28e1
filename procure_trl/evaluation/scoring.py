"""Scoring sampled completions: each distinct (prompt, tests) program run once in the sandboxed executor, pass@k of
every group of prompts, and CCS with its gap statistics over the rows, overall, per concept, on the dependent rows
and per site count.

The metric functions are the package's (:mod:`procure_trl.metrics.functional_correctness`,
:func:`procure_trl.metrics.ccs.concept_consistency_score`), the same the ``pass_at_k`` and ``ccs`` ``evaluate``
modules wrap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from procure_trl.dataset.prompt_format import program_prefix
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.results import PromptRow, ScoredPrompt
from procure_trl.evaluation.verdicts import completion_verdict
from procure_trl.execution import ExecutionResult
from procure_trl.metrics.ccs import GAP_KEYS, ccs_per_group, concept_consistency_score
from procure_trl.metrics.functional_correctness import execute_candidates, score_candidates

__all__ = ["ROW_SCORE_KEYS", "ccs_by_sites", "ccs_of", "execute_all", "per_concept_rows", "score_group"]

def execute_all(
    groups: Sequence[Sequence[tuple[str, str]]], completions: dict[str, list[str]], config: EvaluationConfig
) -> dict[tuple[str, str], list[ExecutionResult]]:
    """Run every completion of every distinct (prompt, tests) once, in one executor pool.

    A prompt shared by several rows (the same cut original for two concepts) runs once: its results serve
    each of them.
    """
    keys = list(dict.fromkeys(key for group in groups for key in group))
    outcomes = execute_candidates(
        [[program_prefix(prompt) + c for c in completions[prompt]] for prompt, _ in keys],
        [tests for _, tests in keys],
        num_workers=config.num_workers,
        timeout=config.timeout,
        progress=True,
    )
    return dict(zip(keys, outcomes))


def score_group(
    group: Sequence[tuple[str, str]],
    outcomes: dict[tuple[str, str], list[ExecutionResult]],
    completions: dict[str, list[str]],
    ks: Sequence[int],
) -> tuple[dict[str, float], list[ScoredPrompt]]:
    """pass@k over a group of (prompt, tests) and its scored sides; ``{}`` for an empty group."""
    if not group:
        return {}, []
    sides = [
        ScoredPrompt(prompt, [completion_verdict(c, o) for c, o in zip(completions[prompt], outcomes[(prompt, tests)])])
        for prompt, tests in group
    ]
    return score_candidates([outcomes[key] for key in group], ks), sides


def ccs_of(rows: Sequence[PromptRow], predictions: Sequence[list[int]], references: Sequence[list[int]],
            config: EvaluationConfig, quiet: bool = False) -> dict[str, Any] | None:
    """The CCS metric (with its gap statistics) over ``rows``, per concept too; ``None`` without rows.

    ``quiet``: no warning when no pair is valid (for a subset of the rows; the report says n/a).
    """
    if not rows:
        return None
    with warnings.catch_warnings():
        # The metric warns when no pair is valid; the report says so itself ("CCS n/a", "0 valid pairs"), so the
        # warning, a raw line with a source path, tells the user nothing more.
        warnings.filterwarnings("ignore", message="CCS is undefined", category=RuntimeWarning)
        if quiet:
            warnings.simplefilter("ignore", RuntimeWarning)
        return concept_consistency_score(
            predictions=predictions, references=references, concepts=[r.concept.value for r in rows],
            confidence=config.confidence, n_bootstrap=config.n_bootstrap, seed=config.seed,
        )


def ccs_by_sites(rows: Sequence[PromptRow], predictions: Sequence[list[int]], references: Sequence[list[int]],
                 config: EvaluationConfig) -> list[dict[str, Any]]:
    """CCS per (concept, site count): the CCS metric over the same pairs, grouped by both.

    ``predictions[i]`` and ``references[i]``: the counterfactual and reference pass vectors of ``rows[i]``.
    """
    label = "{}\x00{}".format  # one group name per (concept, site count)
    scores = ccs_per_group(predictions, references, [label(r.concept.value, r.sites) for r in rows],
                           confidence=config.confidence, n_bootstrap=config.n_bootstrap, seed=config.seed)
    out = []
    for concept, sites in sorted({(r.concept.value, r.sites) for r in rows}):
        part = scores[label(concept, sites)]
        out.append({"concept": concept, "sites": sites, "rows": part["rows"], "ccs": part["ccs"],
                    "ccs_ci": part["ccs_ci"], "ame": part["ame"]})
    return out


#: The scores of one set of rows that the report repeats per concept (all rows and dependent rows).
ROW_SCORE_KEYS = ("ccs", "ccs_ci", *GAP_KEYS)


def _concept_scores(ccs: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """``ROW_SCORE_KEYS`` of concept ``name`` from a CCS metric output (``None`` each when it has no such rows)."""
    return {key: (ccs[f"{key}_per_concept"].get(name) if ccs else None) for key in ROW_SCORE_KEYS}


def per_concept_rows(
    accounting: dict[str, dict[str, Any]], ccs: dict[str, Any] | None, pass_at_k: dict[str, Any],
    rows: Sequence[PromptRow] = (), ccs_dependent: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    table = []
    for name, counts in accounting.items():
        pairs = ccs["pairs_per_concept"].get(name, {}) if ccs else {}
        mine = [r for r in rows if r.concept.value == name]
        dependent = sum(r.dependent for r in mine)
        table.append(
            {
                "concept": name,
                "rows_given": counts["given"],
                "rows": counts["scored"],
                "skipped": sum(counts["skipped"].values()),
                "skipped_by_reason": counts["skipped"],
                **_concept_scores(ccs, name),
                "ame": ccs["ame_per_concept"].get(name) if ccs else None,
                "consistent_pairs": pairs.get("consistent", 0),
                "valid_pairs": pairs.get("valid", 0),
                "remainder_differs_rows": sum(r.remainder_differs for r in mine),
                "dependent_rows": dependent,
                "dependent": {"rows": dependent, **_concept_scores(ccs_dependent, name)},
                "pass_at_k_reference": pass_at_k["reference"].get(name, {}),
                "pass_at_k_counterfactual": pass_at_k["counterfactual"].get(name, {}),
            }
        )
    return table
