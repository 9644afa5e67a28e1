"""Dataset preparation for the concept-aware trainer: tokenize rows with their perturbation masks.

Two row schemas are accepted (see ``docs/datasets.md`` for how ``procure build`` makes them):

* prompt/completion rows with ``changed_spans`` (``[start, end)`` character offsets into the
  completion, empty for originals): tokenized here exactly as TRL's ``SFTTrainer`` tokenizes
  prompt/completion rows (EOS appended, completion mask from the prompt's tokens), with the mask
  from :func:`procure_trl.dataset.masks.prompt_completion_mask`; conversational rows (``messages``, or
  prompt/completion lists of messages, as ``procure perturb --dataset`` writes them) go through the
  chat template with :func:`procure_trl.dataset.masks.conversation_mask`;
* pre-tokenized rows with ``input_ids`` and ``perturbation_mask`` (and ``labels``, or
  ``completion_mask`` used when ``completion_only_loss=True``, as in TRL).

Functions here work row by row and are used through ``Dataset.map``; they raise ``ValueError``
naming the row when something does not line up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from procure_trl.dataset.masks import check_mask_alignment, conversation_mask, prompt_completion_mask
from procure_trl.errors import UserError

BUILD_HINT = (
    "Build a counterfactual dataset with `procure build` (rows with prompt, "
    "completion and changed_spans, or add --tokenizer for input_ids and perturbation_mask), or tokenize rows "
    "yourself with procure_trl.dataset.masks.prompt_completion_mask"
)


def concept_dataset_kind(
    column_names: Sequence[str], mask_column: str, spans_column: str, dataset_name: str = "train"
) -> str:
    """Return ``"tokenized"`` or ``"spans"`` for a dataset's columns, or raise naming what is missing."""
    columns = set(column_names)
    if "input_ids" in columns:
        if mask_column not in columns:
            raise UserError(
                f"the {dataset_name} dataset is pre-tokenized (has 'input_ids') but has no {mask_column!r} column; "
                f"columns: {sorted(columns)}. {BUILD_HINT}. If the mask lives under another name, set "
                "perturbation_mask_column in ConceptAwareSFTConfig."
            )
        return "tokenized"
    text = ("messages",) if "messages" in columns else ("prompt", "completion")
    missing = [c for c in (*text, spans_column) if c not in columns]
    if missing:
        raise UserError(
            f"the {dataset_name} dataset lacks the column(s) {missing} (columns: {sorted(columns)}). "
            f"ConceptAwareSFTTrainer needs prompt/completion or messages rows with {spans_column!r}, or pre-tokenized "
            f"rows with 'input_ids' and {mask_column!r}. {BUILD_HINT}."
        )
    return "spans"


def is_original_row(example: dict[str, Any], *, spans_column: str, mask_column: str) -> bool:
    """Whether a row is an original program (``train_on="originals"`` keeps only these): its ``concept`` says
    ``original``; without a ``concept`` column, it has no changed span (spans rows) or no perturbed token
    (pre-tokenized rows)."""
    if "concept" in example:
        return example["concept"] == "original"
    if spans_column in example:
        return not example[spans_column]
    return not any(example.get(mask_column) or ())


def keep_originals(dataset: Any, *, spans_column: str, mask_column: str) -> Any:
    """The original-program rows of a ``Dataset`` or ``IterableDataset`` (:func:`is_original_row`).

    Raises:
        ValueError: a ``Dataset`` without a single original row (training on nothing would be silent).
    """
    kwargs = {"desc": "Keeping original programs"} if hasattr(dataset, "num_rows") else {}
    kept = dataset.filter(is_original_row, fn_kwargs={"spans_column": spans_column, "mask_column": mask_column},
                          **kwargs)
    if hasattr(kept, "num_rows") and kept.num_rows == 0:
        raise UserError("train_on='originals' but the train dataset holds no original program (no row with concept "
                         "'original' or without changed spans); train on a dataset built by `procure build`")
    return kept


def training_prompt_format(dataset: Any) -> str | None:
    """The prompt format of a training dataset's rows (:func:`procure_trl.dataset.prompt_format.row_format` of its first
    row): ``chat`` for conversational rows, ``completion`` for prompt/completion strings, ``None`` for rows with
    neither (pre-tokenized ids alone) or no rows."""
    from procure_trl.dataset.prompt_format import row_format

    columns = set(getattr(dataset, "column_names", None) or ())
    if not columns & {"prompt", "messages"}:
        return None
    try:
        first = dataset[0] if hasattr(dataset, "__getitem__") and hasattr(dataset, "num_rows") else next(iter(dataset))
    except (IndexError, StopIteration):
        return None
    return row_format(first)


def _last_assistant(messages: Sequence[dict]) -> int:
    return max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages) - 1)


def tokenize_concept_row(
    example: dict[str, Any], idx: int | None, *, tokenizer: Any, spans_column: str, mask_column: str,
    message_column: str = "changed_message", assistant_only_loss: bool = False,
) -> dict[str, list[int]]:
    """Tokenize one row like ``SFTTrainer`` and add its perturbation mask.

    A row is prompt/completion strings, conversational prompt/completion (lists of messages), or
    ``messages``; for the conversational ones the spans index the content of message ``example[message_column]``
    (of ``messages``, or of the completion messages), by default the last assistant message.
    """
    spans = example[spans_column] or []
    try:
        if "messages" in example and "prompt" not in example:
            messages = example["messages"]
            index = example.get(message_column)
            index = _last_assistant(messages) if index is None or index < 0 else index
            tokenized = conversation_mask(messages, index, spans, tokenizer, assistant_masks=assistant_only_loss)
        elif isinstance(example["prompt"], list) and isinstance(example["completion"], list):
            prompt, completion = example["prompt"], example["completion"]
            index = example.get(message_column)
            index = _last_assistant(completion) if index is None or index < 0 else index
            tokenized = conversation_mask(prompt + completion, len(prompt) + index, spans, tokenizer,
                                          prompt_messages=len(prompt), assistant_masks=assistant_only_loss)
        elif isinstance(example["prompt"], str) and isinstance(example["completion"], str):
            tokenized = prompt_completion_mask(example["prompt"], example["completion"], spans, tokenizer)
        else:
            raise UserError(
                f"'prompt' and 'completion' must both be strings or both be lists of messages (got "
                f"{type(example['prompt']).__name__}/{type(example['completion']).__name__})"
            )
    except ValueError as err:
        raise UserError(f"row {idx} ({spans_column}={spans!r}): {err}") from err
    out = {"input_ids": tokenized["input_ids"], mask_column: tokenized["perturbation_mask"]}
    for key in ("completion_mask", "assistant_masks"):
        if key in tokenized:
            out[key] = tokenized[key]
    return out


def check_concept_row(
    example: dict[str, Any], idx: int | None, *, mask_column: str, tokenizer: dict[str, str] | None = None
) -> dict:
    """Raise ``ValueError`` unless the row's mask is a 0/1 list as long as its ``input_ids`` and, when the row
    names the tokenizer of its ids (``tokenizer_fingerprint``), that is ``tokenizer``'s; returns ``{}`` (for ``map``).

    Args:
        tokenizer: ``{"tokenizer_name", "tokenizer_fingerprint"}`` of the trainer's tokenizer.
    """
    made_by = example.get("tokenizer_fingerprint")
    if tokenizer and made_by and made_by != tokenizer["tokenizer_fingerprint"]:
        raise UserError(
            f"row {idx}: the dataset was tokenized with {example.get('tokenizer_name')!r} (vocabulary "
            f"{made_by}) but the trainer's tokenizer is {tokenizer['tokenizer_name']!r} (vocabulary "
            f"{tokenizer['tokenizer_fingerprint']}); rebuild the dataset with --tokenizer "
            f"{tokenizer['tokenizer_name']}, or train with the dataset's tokenizer"
        )
    check_mask_alignment(example["input_ids"], example[mask_column], where=f"row {idx}")
    if "labels" in example and len(example["labels"]) != len(example["input_ids"]):
        raise UserError(
            f"row {idx}: 'labels' has {len(example['labels'])} entries but 'input_ids' has {len(example['input_ids'])}"
        )
    return {}


def truncate_mask(
    example: dict[str, Any], idx: int | None, *, mask_column: str, max_length: int, keep_end: bool
) -> dict[str, list[int]]:
    """Cut the mask as TRL cut ``input_ids`` and ``labels`` (``keep_start``/``keep_end``), then check alignment.

    TRL's truncation touches ``input_ids`` and ``labels`` only: without this the mask keeps its full
    length and silently shifts against the labels.
    """
    mask = example[mask_column]
    mask = mask[-max_length:] if keep_end else mask[:max_length]
    check_mask_alignment(example["input_ids"], mask, where=f"row {idx} after truncation to max_length={max_length}")
    return {mask_column: mask}


def tokenization_versions() -> tuple[tuple[str, str], ...]:
    """``(package, version)`` of the code that makes a row's tokens, mask and checks: procure_trl (masks,
    checks, truncation), transformers and tokenizers (the tokenizer's Python and Rust code, chat templates)."""
    import tokenizers
    import transformers

    from procure_trl import __version__

    return (("procure_trl", __version__), ("tokenizers", tokenizers.__version__),
            ("transformers", transformers.__version__))


@dataclass(frozen=True)
class VersionedRowFunction:
    """A row function of this module for ``Dataset.map``, cached under the code versions as well.

    datasets keys a map's cache on the function by reference (its module and name, not its code), its
    arguments and the input's fingerprint: a newer procure_trl or transformers that tokenizes or masks
    differently would reuse the rows an older one cached. datasets hashes this object's fields too, so
    :func:`tokenization_versions` is part of the key.
    """

    function: Callable[..., dict]
    versions: tuple[tuple[str, str], ...] = field(default_factory=tokenization_versions)

    def __call__(self, example: dict[str, Any], idx: int | None, **kwargs: Any) -> dict:
        return self.function(example, idx, **kwargs)
