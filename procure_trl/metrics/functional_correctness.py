"""Functional correctness of candidate programs: run each candidate with its problem's tests, then pass@k.

The one place where candidates become pass/fail verdicts: the evaluation harness calls
:func:`execute_candidates` directly, and the ``pass_at_k`` ``evaluate`` module
(:func:`procure_trl.metrics.module_path` ``("pass_at_k")``) is a thin wrapper over the same functions, so both
give the same numbers for the same input. Execution happens in :mod:`procure_trl.execution` (sandboxed,
resource-limited processes); the estimator is :func:`procure_trl.metrics.pass_at_k.pass_at_k`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from procure_trl.execution import ExecutionJob, ExecutionLimits, ExecutionResult, execute
from procure_trl.execution.limits import check_timeout
from procure_trl.metrics.pass_at_k import check_ks, pass_at_k

__all__ = ["check_candidates", "check_num_workers", "execute_candidates", "score_candidates", "code_eval_results"]


def check_candidates(predictions: Any, references: Any) -> None:
    """Refuse anything but one list of code strings per problem and one test string per problem.

    Raises:
        TypeError: a wrong type, naming the bad entry.
        ValueError: lists of different lengths.
    """
    if not isinstance(predictions, (list, tuple)) or not isinstance(references, (list, tuple)):
        raise TypeError("predictions must be a list of lists of code strings and references a list of test strings")
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have one entry per problem; got {len(predictions)} predictions "
            f"and {len(references)} references"
        )
    for i, candidates in enumerate(predictions):
        if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)):
            raise TypeError(
                f"predictions[{i}] must be a list of candidate strings, got {type(candidates).__name__}; "
                "wrap a single candidate in a list"
            )
        for j, candidate in enumerate(candidates):
            if not isinstance(candidate, str):
                raise TypeError(f"predictions[{i}][{j}] must be a string of code, got {type(candidate).__name__}")
    for i, reference in enumerate(references):
        if not isinstance(reference, str):
            raise TypeError(f"references[{i}] must be a string of test code, got {type(reference).__name__}")


def check_num_workers(num_workers: Any) -> int:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
    return num_workers


def execute_candidates(
    predictions: Sequence[Sequence[str]],
    references: Sequence[str],
    *,
    num_workers: int = 4,
    timeout: float = 3.0,
    progress: bool = False,
) -> list[list[ExecutionResult]]:
    """Execute every candidate followed by its problem's tests; per problem, one result per candidate, in order.

    Each candidate runs as ``candidate + "\\n" + reference`` in its own sandboxed process, at most ``timeout``
    seconds; ``num_workers`` run in parallel; ``progress`` shows a bar.
    """
    check_candidates(predictions, references)
    check_num_workers(num_workers)
    check_timeout(timeout, "timeout")
    jobs, owners = [], []
    for task, (candidates, tests) in enumerate(zip(predictions, references)):
        for candidate in candidates:
            jobs.append(ExecutionJob(program=candidate + "\n" + tests))
            owners.append(task)
    outcomes = execute(jobs, num_workers=num_workers, limits=ExecutionLimits(timeout=float(timeout)), progress=progress)
    per_task: list[list[ExecutionResult]] = [[] for _ in predictions]
    for task, outcome in zip(owners, outcomes):
        per_task[task].append(outcome)
    return per_task


def score_candidates(outcomes: Sequence[Sequence[ExecutionResult]], ks: int | Iterable[int]) -> dict[str, float]:
    """pass@k of executed candidates (:func:`execute_candidates`' output), for every k in ``ks``."""
    return pass_at_k([len(task) for task in outcomes], [sum(o.passed for o in task) for task in outcomes], check_ks(ks))


def code_eval_results(outcomes: Sequence[Sequence[ExecutionResult]]) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """The per-candidate results in the shape of ``code_eval``: problem index -> ``[(candidate index, result)]``.

    ``result`` holds ``task_id``, ``passed``, ``result`` (``"passed"``, ``"timed out"`` or
    ``"failed: <error type>: <message>"``) and ``completion_id``.
    """
    results: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for task, task_outcomes in enumerate(outcomes):
        entries = []
        for completion, outcome in enumerate(task_outcomes):
            if outcome.passed:
                text = "passed"
            elif outcome.status == "timed_out":
                text = "timed out"
            else:
                text = f"failed: {outcome.error_type}: {outcome.message}"
            entries.append((completion, {"task_id": task, "passed": outcome.passed, "result": text,
                                         "completion_id": completion}))
        results[task] = entries
    return results
