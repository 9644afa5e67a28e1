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

Programs run in the sandboxed executor, each distinct (prompt, completion, tests) once, and are scored by the
package's metric functions (:mod:`procure_trl.metrics.functional_correctness`,
:func:`procure_trl.metrics.ccs.concept_consistency_score`), the same functions the ``pass_at_k`` and ``ccs``
``evaluate`` modules wrap. Every completion is stored in the report with its verdict
(:mod:`procure_trl.harness.verdicts`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from procure_trl.concepts import AnyConcept, Concept, concept_names_in
from procure_trl.execution import ExecutionResult
from procure_trl.harness.config import EvaluationConfig
from procure_trl.counterfactual_dataset import load_dataset_split, records_from_rows
from procure_trl.harness.formats import resolve_prompt_format
from procure_trl.harness.counterfactuals import check_variants, keep_concepts, load_counterfactual_variants
from procure_trl.harness.sampling import (
    CompletionCache,
    GenerationBackend,
    GenerationRequest,
    build_backend,
    generate_completions,
)
from procure_trl.harness.dependence import row_dependence
from procure_trl.harness.prompts import TruncationError, counterfactual_prompt_pair
from procure_trl.harness.truncation import truncate_completion
from procure_trl.prompt_format import TaskText, original_prefix, program_prefix, request_prompt
from procure_trl.harness.verdicts import completion_verdict
from procure_trl.metrics.ccs import GAP_KEYS, ccs_per_group, concept_consistency_score
from procure_trl.metrics.functional_correctness import execute_candidates, score_candidates
from procure_trl.problems import Problem, load_problems
from procure_trl.provenance import check_adapter_base, check_near_duplicate_overlap, check_train_overlap
from procure_trl.records import CounterfactualRecord

logger = logging.getLogger(__name__)

__all__ = ["EvaluationReport", "PromptRow", "evaluate_model", "cut_rows", "row_accounting", "DEFINITIONS"]

DEFINITIONS = {
    "original": "benchmark prompt completed n times; program = prompt + completion, run with the problem's tests",
    "reference": "the counterfactual row's original program, cut like its counterfactual, completed n times",
    "counterfactual": "the perturbed program, cut (if_else_flip: at the flipped then-branch; otherwise after "
    "line_fraction of the solution lines), completed n times",
    "ccs.references": "per row: pass/fail of the reference completions",
    "ccs.predictions": "per row: pass/fail of the counterfactual completions",
    "ccs_expected": "the CCS expected if each row's reference and counterfactual outcomes were exchangeable "
    "(shuffled between the sides; exact hypergeometric expectation, pooled like CCS)",
    "ccs_gap": "ccs - ccs_expected, with a row-bootstrap interval (ccs_gap_ci): about 0 for a concept-invariant "
    "model at any pass rate, negative when a row's passes cluster on one side; 0 by construction at n=1",
    "pass_gap": "mean over rows of (counterfactual pass rate - reference pass rate), with a row-bootstrap "
    "interval (pass_gap_ci) and the two-sided p-value of a sign-flip permutation test (pass_gap_p)",
    "remainder_differs": "per row: the text left to complete differs between the reference and counterfactual "
    "programs",
    "dependent": "per row: the counterfactual's text left to complete holds a changed span, reads a value "
    "defined in a changed span (def-use chains), or reads an object changed code mutates; ccs_dependent scores "
    "only these rows",
}


@dataclass(frozen=True)
class PromptRow:
    """One (problem, concept) counterfactual row that was cut: the two prompts it is scored on."""

    task_id: str
    concept: AnyConcept
    reference_prompt: str
    counterfactual_prompt: str
    sites: int = 1
    """How many places the counterfactual changed (the row's ``sites``; 1 when the file does not say)."""
    variant: int | None = None
    """Which of the (problem, concept)'s counterfactuals this is (``procure perturb --variants N``); ``None`` for one."""
    remainder_differs: bool = True
    """The text left to complete differs between the two sides (:mod:`procure_trl.harness.dependence`)."""
    dependent: bool = True
    """The counterfactual's text left to complete uses a name or value the change touched."""


@dataclass
class EvaluationReport:
    """Everything one run measured; :meth:`to_dict` is ``report.json``.

    Attributes:
        config: the run's settings.
        pass_at_k: ``{"original": {"pass@1": ...}, "reference": {concept: {...}}, "counterfactual": {concept: {...}}}``.
        ccs: the CCS metric's output over all rows (``None`` without counterfactual rows), with the CCS expected
            by chance, the gap to it and the paired pass-rate test.
        ccs_dependent: the same over the *dependent* rows only (those whose text left to complete uses what the
            change touched; ``None`` when there is none).
        per_concept: one summary dict per concept (rows given, scored and skipped by reason, CCS with interval,
            AME, pass@k of both sides).
        per_sites: CCS by concept and site count (how many places the counterfactual changed): one dict
            per (concept, sites) with ``rows``, ``ccs``, ``ccs_ci``, ``ame``.
        tasks: per problem: the original's prompt and completions with their verdicts, per scored concept the
            same for the reference and counterfactual prompts, and the concepts skipped.
        skipped: ``{"task_id", "concept", "reason", "message"}`` for each counterfactual row not scored.
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
    per_sites: list[dict[str, Any]] = field(default_factory=list)
    ccs_dependent: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "definitions": DEFINITIONS,
            "pass_at_k": self.pass_at_k,
            "ccs": self.ccs,
            "ccs_dependent": self.ccs_dependent,
            "per_concept": self.per_concept,
            "per_sites": self.per_sites,
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


def cut_rows(
    variants: Sequence[CounterfactualRecord], problems: dict[str, Problem], config: EvaluationConfig
) -> tuple[list[PromptRow], list[dict[str, str]]]:
    """The rows that can be cut (:func:`~procure_trl.harness.prompts.counterfactual_prompt_pair`), and for every
    other one its ``task_id``, ``concept``, ``reason`` code (a key of ``SKIP_REASONS``) and ``message``.

    Args:
        variants: valid counterfactual rows.
        problems: their problems by task id (the prompt's line count is always kept in both prompts).
        config: ``line_fraction`` and ``if_else_at_branch`` of the cut.
    """
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
            skipped.append(
                {"task_id": variant.task_id, "concept": variant.concept.value, "reason": exc.reason, "message": str(exc)}
            )
            continue
        # From the raw cuts, before any prompt format: what is left of each program to complete.
        facts = row_dependence(variant.original, variant.code, pair.reference, pair.counterfactual,
                               variant.changed_spans)
        rows.append(PromptRow(variant.task_id, variant.concept, pair.reference, pair.counterfactual,
                              variant.sites or 1, variant.variant, facts.remainder_differs, facts.dependent))
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
            out[name] = {"given": given_counts[name], "scored": scored_counts[name], "skipped": dict(sorted(reasons.items()))}
    return out


@dataclass
class _Side:
    """One scored prompt: the prompt, and per completion its text and verdict (in sample order)."""

    prompt: str
    verdicts: list[dict[str, Any]]

    @property
    def passed(self) -> list[int]:
        return [int(v["status"] == "passed") for v in self.verdicts]

    @property
    def statuses(self) -> list[str]:
        return [v["status"] for v in self.verdicts]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "passed": self.passed, "completions": self.verdicts}


def _execute_all(
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


def _score_group(
    group: Sequence[tuple[str, str]],
    outcomes: dict[tuple[str, str], list[ExecutionResult]],
    completions: dict[str, list[str]],
    ks: Sequence[int],
) -> tuple[dict[str, float], list[_Side]]:
    """pass@k over a group of (prompt, tests) and its scored sides; ``{}`` for an empty group."""
    if not group:
        return {}, []
    sides = [
        _Side(prompt, [completion_verdict(c, o) for c, o in zip(completions[prompt], outcomes[(prompt, tests)])])
        for prompt, tests in group
    ]
    return score_candidates([outcomes[key] for key in group], ks), sides


def _sample(
    prompts: Sequence[str], config: EvaluationConfig, backend: GenerationBackend | None,
    entry_points: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """``config.n`` completions of every request prompt, from the cache where possible (the run resumes), each
    truncated where its program ends (:func:`~procure_trl.harness.truncation.truncate_completion`, with the
    entry point of the prompt's task from ``entry_points``)."""
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
        entry = (entry_points or {}).get(request.prompt)
        completions[request.prompt].append(truncate_completion(program_prefix(request.prompt), text, entry))
    return completions


def _ccs_of(rows: Sequence[PromptRow], predictions: Sequence[list[int]], references: Sequence[list[int]],
            config: EvaluationConfig, quiet: bool = False) -> dict[str, Any] | None:
    """The CCS metric (with its gap statistics) over ``rows``, per concept too; ``None`` without rows.

    ``quiet``: no warning when no pair is valid (for a subset of the rows; the report says n/a).
    """
    if not rows:
        return None
    with warnings.catch_warnings():
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


def _per_concept_rows(
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


def _benchmark_tasks(
    config: EvaluationConfig, problems: Sequence[Problem] | None
) -> tuple[list[Problem], list[CounterfactualRecord]]:
    """Every problem of the benchmark, and the valid counterfactuals of ``config.counterfactuals``."""
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


#: The benchmark a task id comes from, by prefix (the benchmark loaders' id formats).
TASK_PREFIX_BENCHMARKS = {"HumanEval/": "humaneval", "MBPP/": "mbpp", "CodeContests/": "codecontests"}


def _benchmarks_of(task_ids: Sequence[str], dataset: str) -> list[str]:
    names, unknown = [], []
    for task_id in task_ids:
        name = next((b for prefix, b in TASK_PREFIX_BENCHMARKS.items() if task_id.startswith(prefix)), None)
        if name is None:
            unknown.append(task_id)
        elif name not in names:
            names.append(name)
    if unknown:
        raise ValueError(
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
    split = load_dataset_split(config.dataset, config.dataset_config, config.split)
    task_ids, variants = records_from_rows(split)
    source = f"dataset {config.dataset} (config {config.dataset_config}, split {config.split})"
    if not task_ids:
        raise ValueError(f"{source} has no rows")
    if problems is None:
        benchmarks = config.benchmark.split(",") if config.benchmark else _benchmarks_of(task_ids, config.dataset)
        config.benchmark = ",".join(benchmarks)  # the report names what the tests came from
        problems = [p for name in benchmarks for p in load_problems(name.strip())]
    config.benchmark = config.benchmark or "the given problems"
    by_id = {p.task_id: p for p in problems}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} task(s) ({', '.join(missing[:5])}) are not in {config.benchmark}; pass the "
            "--benchmark the dataset was built from"
        )
    check_variants(variants, by_id, source, str(config.benchmark))
    if config.concepts:
        variants = keep_concepts(variants, Concept.parse_list(config.concepts))
    return [by_id[t] for t in task_ids], variants


def evaluate_model(
    config: EvaluationConfig,
    *,
    problems: Sequence[Problem] | None = None,
    backend: GenerationBackend | None = None,
) -> EvaluationReport:
    """Run the whole evaluation of ``config`` and write its report, summary and plots to ``config.output_dir``.

    Args:
        config: what to evaluate and how.
        problems: the benchmark's problems (default: ``load_problems(config.benchmark, split=config.split)``; with
            ``config.dataset``: the problems its tasks are looked up in, default the benchmarks of its task ids).
        backend: the completion backend (default: :func:`~procure_trl.harness.sampling.build_backend`,
            built only when some completion is not cached yet); pass a
            :class:`~procure_trl.harness.sampling.ScriptedBackend` to score given completions.

    Raises:
        PermissionError: ``HF_ALLOW_CODE_EVAL`` is not ``1`` (checked before anything is generated).
        ValueError: a bad counterfactual file, e.g. one made for another benchmark; an adapter asked to score
            tasks it was trained on or near duplicates of them (unless ``allow_train_overlap``) or loaded on another base model (unless
            ``allow_base_mismatch``).
        FileNotFoundError: a local dataset folder that does not exist.
    """
    from procure_trl.harness.report import write_report

    _require_code_execution_opt_in()
    if config.task != "generate":  # the downstream tasks are a stage of their own
        from procure_trl.evaluation.downstream import evaluate_downstream

        return evaluate_downstream(config, problems=problems, backend=backend)
    if config.adapter and not config.allow_base_mismatch:
        check_adapter_base(config.adapter, config.model)
    if config.dataset:
        problems, variants = _dataset_tasks(config, problems)
    else:
        problems, variants = _benchmark_tasks(config, problems)
    by_id = {p.task_id: p for p in problems}
    selected = problems[: config.limit] if config.limit else problems
    selected_ids = {p.task_id for p in selected}
    if config.adapter and not config.allow_train_overlap:
        check_train_overlap(config.adapter, [p.task_id for p in selected])
        check_near_duplicate_overlap(config.adapter, selected, problems)
    given = [v for v in variants if v.task_id in selected_ids]
    rows, skipped = cut_rows(given, by_id, config)
    for item in skipped:
        logger.info("skipped %s / %s: %s", item["task_id"], item["concept"], item["message"])
    accounting = row_accounting([v.concept for v in given], [r.concept for r in rows], skipped)

    fmt = resolve_prompt_format(config, backend)
    texts = {task_id: TaskText.from_problem(by_id[task_id]) for task_id in selected_ids}

    def request(task_id: str, prefix: str) -> str:  # the key a completion is sampled and cached under
        return request_prompt(fmt, texts[task_id], prefix)

    original_requests = [request(p.task_id, original_prefix(fmt, texts[p.task_id])) for p in selected]
    side_requests = [{side: request(r.task_id, getattr(r, f"{side}_prompt")) for side in ("reference", "counterfactual")}
                     for r in rows]
    entry_points = dict(zip(original_requests, (p.entry_point for p in selected)))
    for r, pair in zip(rows, side_requests):
        entry_points.update(dict.fromkeys(pair.values(), by_id[r.task_id].entry_point))
    prompts = original_requests + [x for pair in side_requests for x in pair.values()]
    completions = _sample(list(dict.fromkeys(prompts)), config, backend, entry_points)

    # Groups of (prompt, tests): the originals, then per concept the reference and the counterfactual sides.
    # Every concept of the rows, user-defined ones included (one concept object per name).
    by_name = {r.concept.value: r.concept for r in rows}
    concepts_present = [by_name[name] for name in concept_names_in(by_name)]
    index = {c: [i for i, r in enumerate(rows) if r.concept.value == c.value] for c in concepts_present}
    original_group = [(prompt, p.tests) for prompt, p in zip(original_requests, selected)]
    side_groups = {
        (c, side): [(side_requests[i][side], by_id[rows[i].task_id].tests) for i in index[c]]
        for c in concepts_present
        for side in ("reference", "counterfactual")
    }
    outcomes = _execute_all([original_group, *side_groups.values()], completions, config)

    original_scores, original_sides = _score_group(original_group, outcomes, completions, config.k)
    pass_at_k: dict[str, Any] = {"original": original_scores, "reference": {}, "counterfactual": {}}
    row_sides: dict[int, dict[str, _Side]] = {}
    for (concept, side), group in side_groups.items():
        pass_at_k[side][concept.value], sides = _score_group(group, outcomes, completions, config.k)
        for i, scored in zip(index[concept], sides):
            row_sides.setdefault(i, {})[side] = scored

    predictions = [row_sides[i]["counterfactual"].passed for i in range(len(rows))]
    references = [row_sides[i]["reference"].passed for i in range(len(rows))]
    ccs = _ccs_of(rows, predictions, references, config)
    dependent = [i for i, r in enumerate(rows) if r.dependent]
    ccs_dependent = _ccs_of([rows[i] for i in dependent], [predictions[i] for i in dependent],
                            [references[i] for i in dependent], config, quiet=True)

    tasks = [
        {"task_id": p.task_id, "original": side.to_dict(), "variants": [], "skipped": []}
        for p, side in zip(selected, original_sides)
    ]
    task_index = {t["task_id"]: t for t in tasks}
    for i, row in enumerate(rows):
        task_index[row.task_id]["variants"].append(
            {
                "concept": row.concept.value,
                "sites": row.sites,
                "variant": row.variant,
                "remainder_differs": row.remainder_differs,
                "dependent": row.dependent,
                "reference": row_sides[i]["reference"].to_dict(),
                "counterfactual": row_sides[i]["counterfactual"].to_dict(),
            }
        )
    for item in skipped:
        task_index[item["task_id"]]["skipped"].append({k: v for k, v in item.items() if k != "task_id"})
    per_concept = _per_concept_rows(accounting, ccs, pass_at_k, rows, ccs_dependent)
    per_sites = ccs_by_sites(rows, predictions, references, config)
    timeouts: dict[str, Any] = {
        "original": sum(side.statuses.count("timed_out") for side in original_sides),
        "reference": Counter(),
        "counterfactual": Counter(),
    }
    for i, row in enumerate(rows):
        for side in ("reference", "counterfactual"):
            timeouts[side][row.concept.value] += row_sides[i][side].statuses.count("timed_out")
    timeouts["reference"], timeouts["counterfactual"] = dict(timeouts["reference"]), dict(timeouts["counterfactual"])
    report = EvaluationReport(config, pass_at_k, ccs, per_concept, tasks, skipped, timeouts, per_sites=per_sites,
                              ccs_dependent=ccs_dependent)
    report.files["completions"] = config.completion_cache_path
    write_report(report, config.output_dir)
    return report
