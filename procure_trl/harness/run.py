"""``evaluate_model``: prompts -> completions -> execution -> pass@k and CCS -> report.

What is measured (also written into every report under ``"definitions"``):

* **original**: the benchmark prompt of each problem, completed ``n`` times; pass@k as usual.
* For each valid counterfactual (one (problem, concept) *row*), two prompts are cut the same way
  (:mod:`procure_trl.harness.prompts`): the **reference** prompt from the original program and the
  **counterfactual** prompt from the perturbed program. Each is completed ``n`` times, and the program
  ``prompt + completion`` is run against the problem's tests.
* CCS ``references[i]`` = pass/fail of row i's *reference* completions (the original program cut like its
  counterfactual, not the benchmark prompt), ``predictions[i]`` = pass/fail of its *counterfactual*
  completions. Pairing the counterfactual with an equally cut original compares like with like: both prompts
  hold the same amount of the solution and differ only by the perturbation.

Programs run in the sandboxed executor and are scored by the package's metric functions
(:mod:`procure_trl.metrics.functional_correctness`, :func:`procure_trl.metrics.ccs.concept_consistency_score`),
the same functions the ``pass_at_k`` and ``ccs`` ``evaluate`` modules wrap.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from procure_trl.concepts import Concept
from procure_trl.execution import ExecutionResult
from procure_trl.harness.config import EvaluationConfig
from procure_trl.harness.counterfactuals import load_counterfactual_variants
from procure_trl.harness.sampling import (
    CompletionCache,
    GenerationBackend,
    GenerationRequest,
    build_backend,
    generate_completions,
)
from procure_trl.harness.prompts import TruncationError, counterfactual_prompt_pair
from procure_trl.metrics.ccs import concept_consistency_score
from procure_trl.metrics.functional_correctness import execute_candidates, score_candidates
from procure_trl.problems import Problem
from procure_trl.records import CounterfactualRecord

logger = logging.getLogger(__name__)

__all__ = ["EvaluationReport", "evaluate_model", "DEFINITIONS"]

DEFINITIONS = {
    "original": "benchmark prompt completed n times; program = prompt + completion, run with the problem's tests",
    "reference": "the counterfactual row's original program, cut like its counterfactual, completed n times",
    "counterfactual": "the perturbed program, cut (if_else_flip: at the flipped then-branch; otherwise after "
    "line_fraction of the solution lines), completed n times",
    "ccs.references": "per row: pass/fail of the reference completions",
    "ccs.predictions": "per row: pass/fail of the counterfactual completions",
}


@dataclass(frozen=True)
class _Row:
    """One (problem, concept) pair that could be cut."""

    task_id: str
    concept: Concept
    reference_prompt: str
    counterfactual_prompt: str


@dataclass
class EvaluationReport:
    """Everything one run measured; :meth:`to_dict` is ``report.json``.

    Attributes:
        config: the run's settings.
        pass_at_k: ``{"original": {"pass@1": ...}, "reference": {concept: {...}}, "counterfactual": {concept: {...}}}``.
        ccs: the CCS metric's output over all rows (``None`` without counterfactual rows).
        per_concept: one summary dict per concept (rows, skipped, CCS with interval, AME, pass@k of both sides).
        tasks: per problem: the original's pass/fail list and, per evaluated concept, both sides' lists.
        skipped: ``{"task_id", "concept", "reason"}`` for each counterfactual that could not be cut.
        timeouts: completions that ran out of time (counted as fails in the scores), ``{"original": int,
            "reference": {concept: int}, "counterfactual": {concept: int}}``.
        files: paths of what was written (report, summary, plots, completion cache).
    """

    config: EvaluationConfig
    pass_at_k: dict[str, Any]
    ccs: dict[str, Any] | None
    per_concept: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    timeouts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "definitions": DEFINITIONS,
            "pass_at_k": self.pass_at_k,
            "ccs": self.ccs,
            "per_concept": self.per_concept,
            "skipped": self.skipped,
            "timeouts": self.timeouts,
            "tasks": self.tasks,
            "files": self.files,
        }


def _require_code_execution_opt_in() -> None:
    # Checked before any model is loaded: failing after an hour of generation would waste the run.
    if os.environ.get("HF_ALLOW_CODE_EVAL") != "1":
        raise PermissionError(
            "evaluation executes model-written code; read docs/execution.md, then set HF_ALLOW_CODE_EVAL=1 "
            "to allow it (the pass_at_k metric refuses to run otherwise)"
        )


def _prompt_line_count(problem: Problem) -> int:
    return len(problem.prompt.splitlines())


def _build_rows(
    variants: Sequence[CounterfactualRecord], problems: dict[str, Problem], config: EvaluationConfig
) -> tuple[list[_Row], list[dict[str, str]]]:
    rows, skipped = [], []
    for variant in variants:
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
            skipped.append({"task_id": variant.task_id, "concept": variant.concept.value, "reason": str(exc)})
            continue
        rows.append(_Row(variant.task_id, variant.concept, pair.reference, pair.counterfactual))
    return rows, skipped


def _status(outcome: ExecutionResult) -> str:
    """``passed``, ``timed_out`` or ``failed`` (timeouts are kept apart from failures)."""
    return "passed" if outcome.passed else ("timed_out" if outcome.status == "timed_out" else "failed")


class _Scorer:
    """Executes groups of (prompt, tests) tasks and scores them with the package's metric functions."""

    def __init__(self, completions: dict[str, list[str]], config: EvaluationConfig, total_programs: int):
        self.completions = completions
        self.config = config
        # A whole group is executed per call: the bar advances group by group.
        self.bar = tqdm(total=total_programs, desc="executing", unit="program")

    def __call__(
        self, prompts: Sequence[str], tests: Sequence[str]
    ) -> tuple[dict[str, float], list[list[int]], list[list[str]]]:
        """pass@k of the group, and per task the 0/1 result and the status of each completion."""
        if not prompts:
            return {}, [], []
        predictions = [[prompt + c for c in self.completions[prompt]] for prompt in prompts]
        outcomes = execute_candidates(
            predictions, list(tests), num_workers=self.config.num_workers, timeout=self.config.timeout
        )
        self.bar.update(sum(len(p) for p in predictions))
        passed = [[int(o.passed) for o in task] for task in outcomes]
        statuses = [[_status(o) for o in task] for task in outcomes]
        return score_candidates(outcomes, self.config.k), passed, statuses


def _sample(
    prompts: Sequence[str], config: EvaluationConfig, backend: GenerationBackend | None
) -> dict[str, list[str]]:
    """``config.n`` completions of every prompt, from the cache where possible (the run resumes)."""
    requests = [GenerationRequest(prompt, i) for prompt in prompts for i in range(config.n)]
    cache = CompletionCache(config.completion_cache_path, config.sampling_fingerprint())
    if any(r not in cache for r in requests):
        backend = backend or build_backend(config)  # a finished run reloads no model at all
        texts = generate_completions(
            requests, backend, cache, config.batch_size, config.stop_sequences, desc="sampling completions"
        )
    else:
        texts = [cache.get(r) or "" for r in requests]
    completions: dict[str, list[str]] = {prompt: [] for prompt in prompts}
    for request, text in zip(requests, texts):
        completions[request.prompt].append(text)
    return completions


def _per_concept_rows(
    concepts: Sequence[Concept], ccs: dict[str, Any] | None, pass_at_k: dict[str, Any], skipped: list[dict]
) -> list[dict[str, Any]]:
    table = []
    for concept in concepts:
        name = concept.value
        pairs = ccs["pairs_per_concept"][name] if ccs else {}
        table.append(
            {
                "concept": name,
                "rows": pairs.get("rows", 0),
                "skipped": sum(s["concept"] == name for s in skipped),
                "ccs": ccs["ccs_per_concept"].get(name) if ccs else None,
                "ccs_ci": ccs["ccs_ci_per_concept"].get(name) if ccs else None,
                "ame": ccs["ame_per_concept"].get(name) if ccs else None,
                "consistent_pairs": pairs.get("consistent", 0),
                "valid_pairs": pairs.get("valid", 0),
                "pass_at_k_reference": pass_at_k["reference"].get(name, {}),
                "pass_at_k_counterfactual": pass_at_k["counterfactual"].get(name, {}),
            }
        )
    return table


def evaluate_model(
    config: EvaluationConfig,
    *,
    problems: Sequence[Problem] | None = None,
    backend: GenerationBackend | None = None,
) -> EvaluationReport:
    """Run the whole evaluation of ``config`` and write its report, summary and plots to ``config.output_dir``.

    Args:
        config: what to evaluate and how.
        problems: the benchmark's problems (default: ``load_problems(config.benchmark, split=config.split)``).
        backend: the completion backend (default: :func:`~procure_trl.harness.sampling.build_backend`,
            built only when some completion is not cached yet); pass a
            :class:`~procure_trl.harness.sampling.ScriptedBackend` to score given completions.

    Raises:
        PermissionError: ``HF_ALLOW_CODE_EVAL`` is not ``1`` (checked before anything is generated).
        ValueError: a bad counterfactual file, e.g. one made for another benchmark.
    """
    from procure_trl.harness.report import write_report

    _require_code_execution_opt_in()
    if problems is None:
        from procure_trl.problems import load_problems

        problems = load_problems(config.benchmark, split=config.split)
    problems = list(problems)
    by_id = {p.task_id: p for p in problems}
    variants: list[CounterfactualRecord] = []
    if config.counterfactuals:
        concepts = Concept.parse_list(config.concepts) if config.concepts else None
        # Checked against the whole benchmark, so that --limit never hides a file made for another one.
        variants = load_counterfactual_variants(config.counterfactuals, by_id, config.benchmark, concepts)
    selected = problems[: config.limit] if config.limit else problems
    selected_ids = {p.task_id for p in selected}
    rows, skipped = _build_rows([v for v in variants if v.task_id in selected_ids], by_id, config)
    for item in skipped:
        logger.info("skipped %s / %s: %s", item["task_id"], item["concept"], item["reason"])

    prompts = [p.prompt for p in selected] + [x for r in rows for x in (r.reference_prompt, r.counterfactual_prompt)]
    completions = _sample(list(dict.fromkeys(prompts)), config, backend)

    # One execution call per group of prompts (the originals, then each concept's two sides).
    total_programs = config.n * (len(selected) + 2 * len(rows))
    score = _Scorer(completions, config, total_programs)
    original_scores, original_passed, original_status = score([p.prompt for p in selected], [p.tests for p in selected])
    pass_at_k: dict[str, Any] = {"original": original_scores, "reference": {}, "counterfactual": {}}
    row_results: dict[int, dict[str, list]] = {}
    concepts_present = [c for c in Concept if any(r.concept is c for r in rows)]
    for concept in concepts_present:
        index = [i for i, r in enumerate(rows) if r.concept is concept]
        tests = [by_id[rows[i].task_id].tests for i in index]
        ref_scores, ref_passed, ref_status = score([rows[i].reference_prompt for i in index], tests)
        cf_scores, cf_passed, cf_status = score([rows[i].counterfactual_prompt for i in index], tests)
        pass_at_k["reference"][concept.value] = ref_scores
        pass_at_k["counterfactual"][concept.value] = cf_scores
        for j, i in enumerate(index):
            row_results[i] = {
                "reference_passed": ref_passed[j],
                "counterfactual_passed": cf_passed[j],
                "reference_status": ref_status[j],
                "counterfactual_status": cf_status[j],
            }

    score.bar.close()

    ccs = None
    if rows:
        ccs = concept_consistency_score(
            predictions=[row_results[i]["counterfactual_passed"] for i in range(len(rows))],
            references=[row_results[i]["reference_passed"] for i in range(len(rows))],
            concepts=[r.concept.value for r in rows],
            confidence=config.confidence,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
        )

    tasks = [
        {"task_id": p.task_id, "original": {"passed": passed, "status": status}, "variants": []}
        for p, passed, status in zip(selected, original_passed, original_status)
    ]
    task_index = {t["task_id"]: t for t in tasks}
    for i, row in enumerate(rows):
        task_index[row.task_id]["variants"].append(
            {
                "concept": row.concept.value,
                "reference_prompt": row.reference_prompt,
                "counterfactual_prompt": row.counterfactual_prompt,
                **row_results[i],
            }
        )
    per_concept = _per_concept_rows(concepts_present, ccs, pass_at_k, skipped)
    timeouts: dict[str, Any] = {
        "original": sum(status.count("timed_out") for status in original_status),
        "reference": Counter(),
        "counterfactual": Counter(),
    }
    for i, row in enumerate(rows):
        for side in ("reference", "counterfactual"):
            timeouts[side][row.concept.value] += row_results[i][f"{side}_status"].count("timed_out")
    timeouts["reference"], timeouts["counterfactual"] = dict(timeouts["reference"]), dict(timeouts["counterfactual"])
    report = EvaluationReport(config, pass_at_k, ccs, per_concept, tasks, skipped, timeouts)
    report.files["completions"] = config.completion_cache_path
    write_report(report, config.output_dir)
    return report
