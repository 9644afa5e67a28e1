"""``evaluate_model``: prompts -> completions -> execution -> pass@k and CCS -> report.

What is measured (also written into every report under ``"definitions"``):

* **original**: the benchmark prompt of each problem, completed ``n`` times; pass@k as usual.
* For each valid counterfactual (one (problem, concept) *row*), two prompts are cut the same way
  (:mod:`procure_trl.evaluation.prompts`): the **reference** prompt from the original program and the
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
(:mod:`procure_trl.evaluation.verdicts`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from procure_trl.concepts import concept_names_in
from procure_trl.dataset.prompt_format import TaskText, original_prefix, program_prefix, request_prompt
from procure_trl.errors import NotPermittedError, require_folder_path
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.formats import resolve_prompt_format
from procure_trl.evaluation.results import DEFINITIONS, EvaluationReport, PromptRow, ScoredPrompt
from procure_trl.evaluation.sampling import (
    CompletionCache,
    GenerationBackend,
    GenerationRequest,
    build_backend,
    generate_completions,
)
from procure_trl.evaluation.scoring import ccs_by_sites, ccs_of, execute_all, per_concept_rows, score_group
from procure_trl.evaluation.selection import Selection, cut_rows, row_accounting, select_rows
from procure_trl.evaluation.truncation import truncate_completion
from procure_trl.hub import require_local_or_hub
from procure_trl.problems import Problem

if TYPE_CHECKING:
    from procure_trl.evaluation.downstream import DownstreamReport

__all__ = [
    "DEFINITIONS", "EvaluationReport", "PromptRow", "Requests", "cut_rows", "evaluate_model", "make_requests",
    "require_code_execution_opt_in", "row_accounting", "sample_completions", "score_rows",
]


def evaluate_model(
    config: EvaluationConfig,
    *,
    problems: Sequence[Problem] | None = None,
    backend: GenerationBackend | None = None,
) -> EvaluationReport | DownstreamReport:
    """Run the whole evaluation of ``config`` and write its report, summary and plots to ``config.output_dir``.

    The stages, each a function of this package: :func:`~procure_trl.evaluation.selection.select_rows` (tasks and
    cut rows, after the adapter guards), :func:`make_requests` (prompts in the run's prompt format),
    :func:`sample_completions` (cached, resumable), :func:`score_rows` (execution, pass@k, CCS) and
    :func:`~procure_trl.evaluation.report.write_report`.

    Args:
        config: what to evaluate and how.
        problems: the benchmark's problems (default: ``load_problems(config.benchmark, split=config.split)``; with
            ``config.dataset``: the problems its tasks are looked up in, default the benchmarks of its task ids).
        backend: the completion backend (default: :func:`~procure_trl.evaluation.sampling.build_backend`,
            built only when some completion is not cached yet); pass a
            :class:`~procure_trl.evaluation.sampling.ScriptedBackend` to score given completions.

    Raises:
        PermissionError: ``HF_ALLOW_CODE_EVAL`` is not ``1`` (checked before anything is generated).
        ValueError: a bad counterfactual file, e.g. one made for another benchmark; an adapter asked to score
            tasks it was trained on or near duplicates of them (unless ``allow_train_overlap``) or loaded on another
            base model (unless ``allow_base_mismatch``).
        FileNotFoundError: a local dataset folder that does not exist.
    """
    from procure_trl.evaluation.report import write_report

    require_code_execution_opt_in()
    if config.task != "generate":  # the downstream tasks are a stage of their own
        from procure_trl.evaluation.downstream import evaluate_downstream

        return evaluate_downstream(config, problems=problems, backend=backend)
    require_folder_path(config.output_dir, "--output-dir")  # before the model loads, not when the report is written
    if config.adapter and backend is None:
        # its files are read now: an adapter folder that is not there is one line, not a Hub error (the model is
        # checked when it loads: a run whose completions are all cached loads none; a given backend loads nothing)
        require_local_or_hub(config.adapter, "model", "--adapter")
    selection = select_rows(config, problems)
    requests = make_requests(selection, resolve_prompt_format(config, backend))
    completions = sample_completions(requests.unique(), config, backend, requests.entry_points, requests.heads)
    report = score_rows(selection, requests, completions, config)
    report.files["completions"] = config.completion_cache_path
    write_report(report, config.output_dir)
    return report


def require_code_execution_opt_in() -> None:
    # Checked before any model is loaded: failing after an hour of generation would waste the run.
    if os.environ.get("HF_ALLOW_CODE_EVAL") != "1":
        raise NotPermittedError(
            "evaluation executes model-written code; read docs/execution.md, then set HF_ALLOW_CODE_EVAL=1 "
            "to allow it (the pass_at_k metric refuses to run otherwise)"
        )


@dataclass
class Requests:
    """The prompts of one evaluation as the model reads them (in the run's prompt format): one per selected task
    (its benchmark prompt), two per cut row (``{"reference": ..., "counterfactual": ...}``), and the entry point of
    each prompt's task (where a completion's program must end), and in ``completion`` format the trained prompt
    segment's end in each cut (:attr:`GenerationRequest.head`)."""

    originals: list[str]
    sides: list[dict[str, str]]
    entry_points: dict[str, str]
    heads: dict[str, int] = field(default_factory=dict)

    def unique(self) -> list[str]:
        """Every distinct prompt, in order (a cut shared by two rows is sampled once)."""
        return list(dict.fromkeys(self.originals + [p for pair in self.sides for p in pair.values()]))


def make_requests(selection: Selection, fmt: str) -> Requests:
    """The prompts of ``selection`` rendered in prompt format ``fmt`` (the key a completion is sampled and cached
    under)."""
    by_id = selection.problems
    texts = {p.task_id: TaskText.from_problem(p) for p in selection.selected}
    originals = [request_prompt(fmt, texts[p.task_id], original_prefix(fmt, texts[p.task_id]))
                 for p in selection.selected]
    sides = [{side: request_prompt(fmt, texts[r.task_id], getattr(r, f"{side}_prompt"))
              for side in ("reference", "counterfactual")} for r in selection.rows]
    entry_points = dict(zip(originals, (p.entry_point for p in selection.selected)))
    heads: dict[str, int] = {}
    for row, pair in zip(selection.rows, sides):
        entry_points.update(dict.fromkeys(pair.values(), by_id[row.task_id].entry_point))
        if fmt == "completion":  # (a chat cut is the assistant turn's start: one segment, as trained)
            for side, prompt in pair.items():
                head = getattr(row, f"{side}_head")
                if head is not None:
                    heads[prompt] = head
    return Requests(originals, sides, entry_points, heads)


def sample_completions(
    prompts: Sequence[str], config: EvaluationConfig, backend: GenerationBackend | None,
    entry_points: dict[str, str] | None = None, heads: Mapping[str, int] | None = None,
) -> dict[str, list[str]]:
    """``config.n`` completions of every request prompt, from the cache where possible (the run resumes), each
    truncated where its program ends (:func:`~procure_trl.evaluation.truncation.truncate_completion`, with the
    entry point of the prompt's task from ``entry_points``); ``heads``: the cut prompts' trained prompt segments
    (:attr:`~procure_trl.evaluation.sampling.GenerationRequest.head`)."""
    heads = heads or {}
    requests = [GenerationRequest(prompt, i, heads.get(prompt)) for prompt in prompts for i in range(config.n)]
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


def score_rows(selection: Selection, requests: Requests, completions: dict[str, list[str]],
               config: EvaluationConfig) -> EvaluationReport:
    """Execute every completion against its task's tests and score the run: pass@k of the originals and of both
    sides of every concept's rows, CCS with its gap statistics (all rows, dependent rows, per site count), and per
    task the prompts, completions and verdicts."""
    rows, by_id = selection.rows, selection.problems
    # Groups of (prompt, tests): the originals, then per concept (user-defined ones too) the two sides.
    by_name = {r.concept.value: r.concept for r in rows}
    concepts = [by_name[name] for name in concept_names_in(by_name)]
    index = {c: [i for i, r in enumerate(rows) if r.concept.value == c.value] for c in concepts}
    original_group = [(prompt, p.tests) for prompt, p in zip(requests.originals, selection.selected)]
    side_groups = {(c, side): [(requests.sides[i][side], by_id[rows[i].task_id].tests) for i in index[c]]
                   for c in concepts for side in ("reference", "counterfactual")}
    outcomes = execute_all([original_group, *side_groups.values()], completions, config)

    original_scores, original_sides = score_group(original_group, outcomes, completions, config.k)
    pass_at_k: dict[str, Any] = {"original": original_scores, "reference": {}, "counterfactual": {}}
    row_sides: dict[int, dict[str, ScoredPrompt]] = {}
    for (concept, side), group in side_groups.items():
        pass_at_k[side][concept.value], scored = score_group(group, outcomes, completions, config.k)
        for i, one in zip(index[concept], scored):
            row_sides.setdefault(i, {})[side] = one

    predictions = [row_sides[i]["counterfactual"].passed for i in range(len(rows))]
    references = [row_sides[i]["reference"].passed for i in range(len(rows))]
    ccs = ccs_of(rows, predictions, references, config)
    dependent = [i for i, r in enumerate(rows) if r.dependent]
    ccs_dependent = ccs_of([rows[i] for i in dependent], [predictions[i] for i in dependent],
                           [references[i] for i in dependent], config, quiet=True)
    return EvaluationReport(
        config, pass_at_k, ccs, per_concept_rows(selection.accounting, ccs, pass_at_k, rows, ccs_dependent),
        _task_records(selection, original_sides, row_sides), selection.skipped,
        _timeouts(rows, original_sides, row_sides), per_sites=ccs_by_sites(rows, predictions, references, config),
        ccs_dependent=ccs_dependent)


def _task_records(selection: Selection, original_sides: Sequence[ScoredPrompt],
                  row_sides: dict[int, dict[str, ScoredPrompt]]) -> list[dict[str, Any]]:
    """Per task: the original's scored prompt, every scored row's two sides, and the rows skipped."""
    tasks: list[dict[str, Any]] = [{"task_id": p.task_id, "original": side.to_dict(), "variants": [], "skipped": []}
             for p, side in zip(selection.selected, original_sides)]
    by_task = {t["task_id"]: t for t in tasks}
    for i, row in enumerate(selection.rows):
        by_task[row.task_id]["variants"].append({
            "concept": row.concept.value, "sites": row.sites, "variant": row.variant,
            "remainder_differs": row.remainder_differs, "dependent": row.dependent,
            "reference": row_sides[i]["reference"].to_dict(),
            "counterfactual": row_sides[i]["counterfactual"].to_dict(),
        })
    for item in selection.skipped:
        by_task[item["task_id"]]["skipped"].append({k: v for k, v in item.items() if k != "task_id"})
    return tasks


def _timeouts(rows: Sequence[PromptRow], original_sides: Sequence[ScoredPrompt],
              row_sides: dict[int, dict[str, ScoredPrompt]]) -> dict[str, Any]:
    """Completions that ran out of time (scored as fails): originals, and per side and concept."""
    per_side: dict[str, Counter] = {"reference": Counter(), "counterfactual": Counter()}
    for i, row in enumerate(rows):
        for side, counts in per_side.items():
            counts[row.concept.value] += row_sides[i][side].statuses.count("timed_out")
    return {"original": sum(side.statuses.count("timed_out") for side in original_sides),
            **{side: dict(counts) for side, counts in per_side.items()}}
