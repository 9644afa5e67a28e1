"""Loading a model to run: a base model and its tokenizer, with an optional PEFT adapter on top.

``procure evaluate`` (the transformers backend) and ``procure attention-report`` both load through
:func:`load_model_and_tokenizer`, so a model or adapter that cannot be loaded reads the same in both. Whether the
adapter was trained on this base model is checked by the callers (:func:`procure_trl.provenance.check_adapter_base`)
before any weights load.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from procure_trl.errors import UserError, first_line

__all__ = ["load_model_and_tokenizer", "load_tokenizer"]


def _check_local_folders(model: str, adapter: str | None) -> None:
    """Refuse a model or adapter named by a path that does not exist, before transformers would ask the Hub."""
    for what, name in (("model", model), ("adapter", adapter)):
        if name and name.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(name)):
            raise UserError(f"--{what} {name!r} cannot be loaded: the {what} folder does not exist; give a Hub id or "
                            f"a folder that holds the {what} (its config and weights)")


def load_model_and_tokenizer(
    model: str,
    adapter: str | None = None,
    *,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    prepare: Callable[[Any], None] | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``model`` (a local folder or Hub id) with ``adapter`` on top when given, in eval mode
    on ``device`` (``None``: CUDA when available, else CPU).

    ``prepare`` is called on the base model before the adapter wraps it (e.g. to switch its attention function).

    Raises:
        UserError: the model or adapter cannot be loaded (one line naming it and the fix).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_local_folders(model, adapter)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        loaded = AutoModelForCausalLM.from_pretrained(
            model, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:  # not found locally, not on the Hub, offline without a cached copy, bad config
        raise UserError(f"--model {model!r} cannot be loaded: {first_line(err)}; give a local directory with the "
                        "model and its tokenizer, or a Hub id (cached, when HF_HUB_OFFLINE=1)") from err
    if prepare is not None:
        prepare(loaded)
    if adapter:
        from peft import PeftModel

        try:
            loaded = PeftModel.from_pretrained(loaded, adapter)
        except (OSError, ValueError) as err:
            raise UserError(f"--adapter {adapter!r} cannot be loaded on {model!r}: {first_line(err)}; give a PEFT "
                            "adapter directory (adapter_config.json + weights) trained on --model") from err
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return loaded.to(device).eval(), tokenizer


def load_tokenizer(model: str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of ``model`` alone (cheap: to render prompts before deciding to load any weights).

    Raises:
        UserError: it cannot be loaded (the same line as :func:`load_model_and_tokenizer`'s).
    """
    from transformers import AutoTokenizer

    _check_local_folders(model, None)
    try:
        return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(f"--model {model!r} cannot be loaded: {first_line(err)}; give a local directory with the "
                        "model and its tokenizer, or a Hub id (cached, when HF_HUB_OFFLINE=1)") from err
