"""What a model was made from, written down so that evaluation can refuse what would mislead.

* **Training data.** Next to every saved model (and checkpoint), the concept-aware trainer writes
  ``procure_training_data.json``: the dataset (Hub id or path), config, split, a fingerprint of its rows
  (:func:`dataset_fingerprint`) and the task ids it trained on. Nothing else: no argument, token or key (adapters get pushed to the Hub).
  :func:`check_train_overlap` refuses to score an adapter on its own training tasks, and
  :func:`check_near_duplicate_overlap` on near duplicates of them (:mod:`procure_trl.near_duplicates`).
* **Tokenizer.** A pre-tokenized dataset stores the tokenizer's name and a fingerprint of its vocabulary
  (:func:`tokenizer_fingerprint`); the trainer refuses token ids made by another tokenizer.
* **Base model.** :func:`check_adapter_base` refuses to load an adapter on another base model than the one in its
  ``adapter_config.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TRAINING_DATA_FILE",
    "TOKENIZER_COLUMNS",
    "tokenizer_fingerprint",
    "dataset_fingerprint",
    "training_data_record",
    "write_training_data",
    "read_adapter_file",
    "check_train_overlap",
    "check_near_duplicate_overlap",
    "check_adapter_base",
]

#: The file the trainer writes next to a saved model: what it trained on.
TRAINING_DATA_FILE = "procure_training_data.json"
#: Columns of a pre-tokenized counterfactual dataset that name the tokenizer of its ``input_ids``.
TOKENIZER_COLUMNS = ("tokenizer_name", "tokenizer_fingerprint")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the vocabulary (every token and its id, added tokens included): equal fingerprints mean
    the same text gets the same ids, whatever the tokenizer is called or where it was loaded from."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def dataset_fingerprint(dataset: Any) -> str | None:
    """A hash of the rows of a ``datasets.Dataset`` (their Arrow data, in order); ``None`` for an
    ``IterableDataset``. ``Dataset._fingerprint`` is no substitute: a local folder rebuilt with other rows can
    keep the same one."""
    if not hasattr(dataset, "with_format") or not hasattr(dataset, "num_rows"):
        return None
    import pyarrow as pa

    digest = hashlib.sha256()
    for table in dataset.with_format("arrow").iter(batch_size=1000):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
    return digest.hexdigest()[:16]


def _short_list(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def training_data_record(dataset: Any, origin: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``dataset`` is, for :data:`TRAINING_DATA_FILE`.

    Args:
        dataset: the training ``datasets.Dataset`` (or ``IterableDataset``: its task ids are not listed).
        origin: where it came from, ``{"dataset": Hub id or path, "config": ..., "split": ...}``; missing or
            ``None`` values are taken from the dataset's own info.
    """
    origin = dict(origin or {})
    info = getattr(dataset, "info", None)
    columns = getattr(dataset, "column_names", None) or []
    task_ids = None
    if "task_id" in columns and hasattr(dataset, "unique"):  # an IterableDataset cannot be listed up front
        task_ids = sorted(dataset.unique("task_id"))
    split = origin.get("split") or getattr(dataset, "split", None)
    return {
        "dataset": origin.get("dataset") or getattr(info, "dataset_name", None),
        "config": origin.get("config") or getattr(info, "config_name", None),
        "split": str(split) if split is not None else None,
        "fingerprint": dataset_fingerprint(dataset),
        "num_rows": getattr(dataset, "num_rows", None),
        "task_ids": task_ids,
    }


def write_training_data(output_dir: str | os.PathLike, record: Mapping[str, Any]) -> str:
    """Write ``record`` as :data:`TRAINING_DATA_FILE` in ``output_dir``; returns its path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, TRAINING_DATA_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(dict(record), handle, indent=2)
    return path


def read_adapter_file(adapter: str, filename: str) -> dict[str, Any] | None:
    """The JSON file ``filename`` of an adapter (a local folder or a Hub repository); ``None`` when it has none."""
    if os.path.isdir(adapter):
        path = os.path.join(adapter, filename)
        if not os.path.isfile(path):
            return None
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = hf_hub_download(adapter, filename)
        except EntryNotFoundError:
            return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


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
        raise ValueError(
            f"adapter {adapter} was trained on {len(overlap)} of the tasks to score ({_short_list(overlap)}) from "
            f"{source}; score held-out tasks (e.g. --dataset {record.get('dataset')} --split test), or pass "
            "--allow-train-overlap to score them anyway"
        )


#: Benchmarks whose problems can be loaded to look up the statements of training tasks, by task source.
_LOADABLE_SOURCES = {"humaneval": "humaneval", "mbpp": "mbpp", "codecontests": "codecontests"}


def _training_problems(task_ids: set[str], given: Iterable[Any]) -> list[Any]:
    """The problems of ``task_ids``: from ``given`` first, else from the benchmark of their task source. A source
    that cannot be loaded here (a problems JSONL, no data) leaves its tasks unchecked."""
    from procure_trl.counterfactual_dataset import task_source
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
    :data:`TRAINING_DATA_FILE` lists the training tasks; :mod:`procure_trl.near_duplicates` says what a near
    duplicate is). The training tasks' statements and programs come from ``known`` problems, else from their
    benchmark (HumanEval, MBPP, CodeContests); tasks found in neither are not checked. Tasks the adapter trained on
    themselves are :func:`check_train_overlap`'s business.

    Raises:
        ValueError: one line naming the pairs, and the fixes.
    """
    from procure_trl.counterfactual_dataset import problem_statement
    from procure_trl.near_duplicates import DEFAULT_THRESHOLD, ComparableTask, near_duplicates_of

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
        raise ValueError(
            f"adapter {adapter} was trained on near duplicates of {len(found)} of the tasks to score "
            f"({_short_list(pairs, 3)}) from {record.get('dataset')}; score a split built by `procure build` (it keeps "
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
    from procure_trl.pretrained import resolve_model_name

    target = resolve_model_name(model)
    if resolve_model_name(base).rstrip("/") == target.rstrip("/"):
        return True
    return os.path.isabs(target) and any(resolve_model_name(c) == target for c in _base_candidates(base, adapter))


def check_adapter_base(adapter: str, model: str) -> None:
    """Refuse to load ``adapter`` on ``model`` when its ``adapter_config.json`` names another base model.

    Local paths are compared resolved (:func:`procure_trl.pretrained.resolve_model_name`): an absolute and a
    relative path to one folder name one model.

    Raises:
        ValueError: one line naming both models and the fixes.
    """
    adapter_config = read_adapter_file(adapter, "adapter_config.json") or {}
    base = adapter_config.get("base_model_name_or_path")
    if base and not _same_model(str(base), model, adapter):
        raise ValueError(
            f"adapter {adapter} was trained on base model {base} (its adapter_config.json) but --model is {model}; "
            f"evaluate with --model {base}, or pass --allow-base-mismatch to load it anyway"
        )
