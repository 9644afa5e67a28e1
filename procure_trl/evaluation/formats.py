"""Which prompt format an evaluation uses (:mod:`procure_trl.dataset.prompt_format`), and the refusal of a mismatch.

``--prompt-format auto`` takes the format recorded where the model's training data is described: the adapter's
``procure_training_data.json``, else the dataset's card (``--dataset``); without a record, ``chat`` when the
model's tokenizer has a chat template and ``completion`` otherwise. An explicit format that differs from the
recorded one is refused unless ``allow_format_mismatch``.
"""

from __future__ import annotations

from typing import Any

from procure_trl.dataset.prompt_format import PROMPT_FORMATS, check_format, default_format, has_chat_template
from procure_trl.errors import UserError
from procure_trl.evaluation.config import EvaluationConfig

__all__ = ["recorded_format", "resolve_prompt_format"]


def recorded_format(config: EvaluationConfig) -> tuple[str | None, str]:
    """``(format, where it is recorded)``: the adapter's training record first, then the dataset; ``(None, "")``."""
    from procure_trl.dataset.rows import dataset_prompt_format
    from procure_trl.provenance import TRAINING_DATA_FILE, read_adapter_file

    if config.adapter:
        record = read_adapter_file(config.adapter, TRAINING_DATA_FILE) or {}
        if record.get("prompt_format") in PROMPT_FORMATS:
            return record["prompt_format"], f"adapter {config.adapter} (trained on {TRAINING_DATA_FILE})"
    if config.dataset:
        fmt = dataset_prompt_format(config.dataset, config.dataset_config, config.split or "test")
        if fmt:
            return fmt, f"dataset {config.dataset}"
    return None, ""


def _tokenizer(config: EvaluationConfig, backend: Any) -> Any:
    """The tokenizer the prompts are rendered with: the backend's, else ``config.model``'s (``None`` for a backend
    without one, such as a scripted backend)."""
    if backend is not None:
        return getattr(backend, "tokenizer", None)
    from procure_trl.evaluation.model_loading import load_tokenizer

    return load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)


def resolve_prompt_format(config: EvaluationConfig, backend: Any = None) -> str:
    """The format of this run (``completion`` or ``chat``); ``config.prompt_format`` is set to it for the report.

    Raises:
        ValueError: a format other than the recorded one (without ``allow_format_mismatch``), or ``chat`` with a
            tokenizer that has no chat template.
    """
    recorded, where = recorded_format(config)
    fmt = check_format(config.prompt_format, recorded, where, config.allow_format_mismatch)
    tokenizer = _tokenizer(config, backend) if fmt in ("auto", "chat") else None
    if fmt == "auto":
        fmt = default_format(tokenizer) if tokenizer is not None else "completion"
    if fmt == "chat" and tokenizer is not None and not has_chat_template(tokenizer):
        raise UserError(
            f"--prompt-format chat needs a tokenizer with a chat template, and {config.model}'s has none; use "
            "--prompt-format completion" + (f" (and --allow-format-mismatch: {where} is in chat format)" if recorded
                                           else "")
        )
    config.prompt_format = "chat" if fmt == "chat" else "completion"  # "auto" was resolved above
    return fmt
