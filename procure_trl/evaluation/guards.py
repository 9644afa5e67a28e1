"""What evaluation refuses before it loads a model: an adapter scored on the tasks it trained on or on near
duplicates of them, and an adapter loaded on another base model than its own.

Each check reads what training wrote beside the adapter (:data:`procure_trl.provenance.TRAINING_DATA_FILE`) or its
``adapter_config.json``; an adapter without the file (not trained by ``procure_trl``) passes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from procure_trl.errors import UserError, short_list
from procure_trl.provenance import TRAINING_DATA_FILE, read_adapter_file

__all__ = ["check_train_overlap", "check_near_duplicate_overlap", "check_adapter_base"]


def check_train_overlap(adapter: str, task_ids: Iterable[str]) -> None:
    """Refuse to score ``task_ids`` with an adapter trained on some of them (its :data:`TRAINING_DATA_FILE`).

    An adapter without the file (not trained by ``procure_trl``) passes.

    Raises:
        ValueError: one line naming the overlapping tasks, the training data, and the fixes.
    """
    record = read_adapter_file(adapter, TRAINING_DATA_FILE)
    if not record or record.get("task_ids") is None:
        return
    overlap = sorted(set(task_ids) & set(record["task_ids"]))
    if overlap:
        source = f"{record.get('dataset')} (config {record.get('config')}, split {record.get('split')})"
        raise UserError(
            f"adapter {adapter} was trained on {len(overlap)} of the tasks to score ({short_list(overlap)}) from "
            f"{source}; score held-out tasks (e.g. --dataset {record.get('dataset')} --split test), or pass "
            "--allow-train-overlap to score them anyway"
        )


#: Benchmarks whose problems can be loaded to look up the statements of training tasks, by task source.
_LOADABLE_SOURCES = {"humaneval": "humaneval", "mbpp": "mbpp", "codecontests": "codecontests"}


def _training_problems(task_ids: set[str], given: Iterable[Any]) -> list[Any]:
    """The problems of ``task_ids``: from ``given`` first, else from the benchmark of their task source. A source
    that cannot be loaded here (a problems JSONL, no data) leaves its tasks unchecked."""
    from procure_trl.dataset.rows import task_source
    from procure_trl.problems import load_problems

    found = {p.task_id: p for p in given if p.task_id in task_ids}
    for source in sorted({task_source(t) for t in task_ids if t not in found}):
        name = _LOADABLE_SOURCES.get(source)
        if name is None:
            continue
        try:
            found.update({p.task_id: p for p in load_problems(name) if p.task_id in task_ids})
        except (OSError, ValueError, ImportError):  # the data is not here: nothing to compare with
            continue
    return list(found.values())


def check_near_duplicate_overlap(adapter: str, problems: Iterable[Any], known: Iterable[Any] = (),
                                 threshold: float | None = None) -> None:
    """Refuse to score ``problems`` with an adapter trained on near duplicates of some of them (its
    :data:`TRAINING_DATA_FILE` lists the training tasks; :mod:`procure_trl.dataset.near_duplicates` says what a near
    duplicate is). The training tasks' statements and programs come from ``known`` problems, else from their
    benchmark (HumanEval, MBPP, CodeContests); tasks found in neither are not checked. Tasks the adapter trained on
    themselves are :func:`check_train_overlap`'s business.

    Raises:
        ValueError: one line naming the pairs, and the fixes.
    """
    from procure_trl.dataset.near_duplicates import DEFAULT_THRESHOLD, ComparableTask, near_duplicates_of
    from procure_trl.dataset.rows import problem_statement

    record = read_adapter_file(adapter, TRAINING_DATA_FILE)
    if not record or record.get("task_ids") is None:
        return
    trained = set(record["task_ids"])
    problems = list(problems)

    def text(problem: Any) -> ComparableTask:
        return ComparableTask(problem_statement(problem.prompt, problem.entry_point), problem.program)

    queries = {p.task_id: text(p) for p in problems if p.task_id not in trained}
    corpus = {p.task_id: text(p) for p in _training_problems(trained, [*problems, *known])}
    found = near_duplicates_of(queries, corpus, DEFAULT_THRESHOLD if threshold is None else threshold)
    if found:
        pairs = [f"{task} ~ {others[0][0]} ({others[0][1]})" for task, others in sorted(found.items())]
        raise UserError(
            f"adapter {adapter} was trained on near duplicates of {len(found)} of the tasks to score "
            f"({short_list(pairs, 3)}) from {record.get('dataset')}; score a split built by `procure build` (it keeps "
            "near duplicates on one side), or pass --allow-train-overlap to score them anyway"
        )


def _base_candidates(base: str, adapter: str) -> list[str]:
    """Where the base path an adapter records may point: as written (from here), and, for a relative path, from
    each folder above the adapter (PEFT records the path as given to the training run, relative to a working
    directory it does not record: ``outputs/tiny-model`` beside ``outputs/adapter``)."""
    candidates = [base]
    if not os.path.isabs(os.path.expanduser(base)) and os.path.isdir(adapter):
        candidates += [os.path.join(folder, base) for folder in Path(os.path.realpath(adapter)).parents]
    return candidates


def _same_model(base: str, model: str, adapter: str) -> bool:
    from procure_trl.evaluation.model_loading import resolve_model_name

    target = resolve_model_name(model)
    if resolve_model_name(base).rstrip("/") == target.rstrip("/"):
        return True
    return os.path.isabs(target) and any(resolve_model_name(c) == target for c in _base_candidates(base, adapter))


def check_adapter_base(adapter: str, model: str) -> None:
    """Refuse to load ``adapter`` on ``model`` when its ``adapter_config.json`` names another base model.

    Local paths are compared resolved (:func:`procure_trl.evaluation.model_loading.resolve_model_name`): an absolute
    and a relative path to one folder name one model.

    Raises:
        ValueError: one line naming both models and the fixes.
    """
    adapter_config = read_adapter_file(adapter, "adapter_config.json") or {}
    base = adapter_config.get("base_model_name_or_path")
    if base and not _same_model(str(base), model, adapter):
        raise UserError(
            f"adapter {adapter} was trained on base model {base} (its adapter_config.json) but --model is {model}; "
            f"evaluate with --model {base}, or pass --allow-base-mismatch to load it anyway"
        )
