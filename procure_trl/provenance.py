"""What a model was made from, written down so that evaluation can refuse what would mislead.

* **Training data.** Next to every saved model (and checkpoint), the concept-aware trainer writes
  ``procure_training_data.json``: the dataset (Hub id or path), config, split, a fingerprint of its rows
  (:func:`dataset_fingerprint`) and the task ids it trained on. Nothing else: no argument, token or key (adapters get
  pushed to the Hub). Evaluation refuses to score an adapter on its own training tasks or near duplicates of them
  (:mod:`procure_trl.evaluation.guards`).
* **Tokenizer.** A pre-tokenized dataset stores the tokenizer's name and a fingerprint of its vocabulary
  (:func:`tokenizer_fingerprint`); the trainer refuses token ids made by another tokenizer.
* **Base model.** Evaluation refuses to load an adapter on another base model than the one in its
  ``adapter_config.json`` (:func:`procure_trl.evaluation.guards.check_adapter_base`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "TRAINING_DATA_FILE",
    "TOKENIZER_COLUMNS",
    "tokenizer_fingerprint",
    "dataset_fingerprint",
    "training_data_record",
    "write_training_data",
    "read_adapter_file",
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
