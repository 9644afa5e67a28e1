"""Dataset rows -> token sequences with the masks the report needs, and left-padded batches.

Rows are tokenized exactly as :class:`~procure_trl.training.ConceptAwareSFTTrainer` tokenizes them
(:func:`~procure_trl.training.data.tokenize_concept_row`, or the row's own ``input_ids`` and
``perturbation_mask`` when the dataset is pre-tokenized), and the queries are the trainer's
(:func:`~procure_trl.training.loss.attention_query_mask`: completion positions at or after the first
perturbed completion token).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from procure_trl.attention_report.control import control_pairs, matched_queries, positions_mask
from procure_trl.provenance import tokenizer_fingerprint
from procure_trl.training.data import check_concept_row, concept_dataset_kind, tokenize_concept_row
from procure_trl.training.loss import IGNORE_INDEX, attention_query_mask

__all__ = ["AttentionExample", "PreparedExamples", "prepare_examples", "collate_left"]

MASK_COLUMN = "perturbation_mask"
SPANS_COLUMN = "changed_spans"


@dataclass
class AttentionExample:
    """One counterfactual row, ready to measure (lists as long as ``input_ids``, 0/1 entries).

    Attributes:
        row: index of the row in the split.
        task_id: the row's task (``None`` when the dataset has no ``task_id`` column).
        concept: the row's concept (``None`` when the dataset has no ``concept`` column).
        input_ids: the tokens.
        perturbation_mask: 1 on perturbed tokens (the keys of ``m_q``).
        query_mask: 1 on the queries of the attention term: completion tokens at or after the first perturbed one.
        control_mask: 1 on the control's tokens (see :mod:`procure_trl.attention_report.control`).
        matched_query_mask: 1 on the queries that see each perturbed token exactly when they see its control.
        control_offset: how much farther from the queries the control lies, in tokens (mean over the pairs).
    """

    row: int
    task_id: str | None
    concept: str | None
    input_ids: list[int]
    perturbation_mask: list[int]
    query_mask: list[int]
    control_mask: list[int]
    matched_query_mask: list[int]
    control_offset: float


@dataclass
class PreparedExamples:
    """The measurable rows of a split and what happened to the others.

    Attributes:
        examples: the rows to measure.
        rows: rows read from the split.
        originals: rows without a perturbed completion token (originals; nothing to measure).
        skipped: counterfactual rows left out, by reason: ``cut_off`` (every perturbed token lies beyond
            ``max_length``), ``no_control`` (too few unperturbed tokens before the changes for a control).
    """

    examples: list[AttentionExample]
    rows: int = 0
    originals: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _tokens(example: dict[str, Any], index: int, tokenizer: Any,
            identity: dict[str, str] | None) -> tuple[list[int], list[int], list[int]]:
    """``(input_ids, perturbation_mask, completion)`` of one row, as the trainer makes them. ``identity``: the
    tokenizer's name and fingerprint for a pre-tokenized dataset, ``None`` for rows with spans."""
    if identity is None:
        example = tokenize_concept_row(example, index, tokenizer=tokenizer, spans_column=SPANS_COLUMN,
                                       mask_column=MASK_COLUMN)
    else:  # the trainer's checks: a 0/1 mask as long as the ids, ids made by this tokenizer
        check_concept_row(example, index, mask_column=MASK_COLUMN, tokenizer=identity)
    ids = list(example["input_ids"])
    # as TRL: the loss covers the completion when the row says where it is, else every token
    completion = example.get("completion_mask") or [1] * len(ids)
    return ids, list(example[MASK_COLUMN]), list(completion)


def _query_mask(ids: Sequence[int], delta: Sequence[int], completion: Sequence[int]) -> list[int]:
    labels = torch.tensor([[t if c else IGNORE_INDEX for t, c in zip(ids, completion)]])
    return attention_query_mask(labels, torch.tensor([list(delta)])).squeeze(0).int().tolist()


def prepare_examples(
    rows: Iterable[dict[str, Any]], column_names: Sequence[str], tokenizer: Any, *,
    max_length: int | None = None, limit: int | None = None, dataset_name: str = "test",
) -> PreparedExamples:
    """Tokenize the rows, keep the counterfactual ones that can be measured, and count the others.

    Raises:
        ValueError: the dataset lacks the columns the trainer needs (naming them), or a row's spans do not fit.
    """
    kind = concept_dataset_kind(column_names, MASK_COLUMN, SPANS_COLUMN, dataset_name)
    identity = None if kind == "spans" else {"tokenizer_name": str(getattr(tokenizer, "name_or_path", "")),
                                             "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)}
    prepared = PreparedExamples(examples=[])
    skipped: Counter[str] = Counter()
    counterfactuals = 0
    for index, example in enumerate(rows):
        if limit is not None and counterfactuals >= limit:
            break
        prepared.rows += 1
        ids, delta, completion = _tokens(example, index, tokenizer, identity)
        if not any(d and c for d, c in zip(delta, completion)):
            prepared.originals += 1
            continue
        counterfactuals += 1
        if max_length is not None:  # keep_start, the trainer's default truncation
            ids, delta, completion = ids[:max_length], delta[:max_length], completion[:max_length]
        queries = _query_mask(ids, delta, completion)
        if not any(queries):
            skipped["cut_off"] += 1
            continue
        pairs = control_pairs([i for i, d in enumerate(delta) if d])
        if pairs is None:
            skipped["no_control"] += 1
            continue
        prepared.examples.append(AttentionExample(
            row=index, task_id=example.get("task_id"), concept=example.get("concept"), input_ids=ids,
            perturbation_mask=list(delta), query_mask=queries,
            control_mask=positions_mask([c for _, c in pairs], len(ids)),
            matched_query_mask=matched_queries(queries, pairs),
            control_offset=sum(p - c for p, c in pairs) / len(pairs),
        ))
    prepared.skipped = dict(skipped)
    return prepared


def collate_left(examples: Sequence[AttentionExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-padded ``(batch, length)`` tensors: ``input_ids``, ``attention_mask``, ``position_ids`` (counted
    from each row's first real token, so padding changes no position) and the four masks (0 on padding)."""
    width = max(len(e.input_ids) for e in examples)

    def pad(values: Sequence[int], fill: int) -> list[int]:
        return [fill] * (width - len(values)) + list(values)

    batch = {
        "input_ids": torch.tensor([pad(e.input_ids, pad_token_id) for e in examples]),
        "attention_mask": torch.tensor([pad([1] * len(e.input_ids), 0) for e in examples]),
    }
    for name in ("perturbation_mask", "query_mask", "control_mask", "matched_query_mask"):
        batch[name] = torch.tensor([pad(getattr(e, name), 0) for e in examples])
    batch["position_ids"] = (batch["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
    return batch
