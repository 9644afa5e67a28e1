"""QLoRA helpers: load a causal LM in 4-bit (bitsandbytes NF4) and a LoRA config for the trainer.

Typical single-GPU use::

    from procure_trl.training.qlora import default_lora_config, load_model_4bit
    from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

    model = load_model_4bit("Qwen/Qwen2.5-Coder-1.5B-Instruct")
    trainer = ConceptAwareSFTTrainer(model, args=ConceptAwareSFTConfig(...), train_dataset=dataset,
                                     processing_class=tokenizer, peft_config=default_lora_config())

The ``LoraConfig`` goes to the trainer as ``peft_config`` (not a ready ``PeftModel``): TRL then wraps the
model itself and keeps the adapters trainable on a quantized base (trl#3926). TRL does not call
``prepare_model_for_kbit_training``, so :func:`load_model_4bit` does.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from procure_trl.errors import UserError

_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
           "float32": torch.float32, "fp32": torch.float32}


def _dtype(value: torch.dtype | str) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    try:
        return _DTYPES[str(value).lower()]
    except KeyError:
        raise UserError(f"unknown dtype {value!r}; use one of {sorted(_DTYPES)}") from None


def default_quantization_config(
    compute_dtype: torch.dtype | str = torch.bfloat16,
    quant_type: str = "nf4",
    double_quant: bool = True,
):
    """The QLoRA ``BitsAndBytesConfig``: 4-bit NF4 weights, double quantization, bf16 compute.

    Args:
        compute_dtype: dtype of the de-quantized matmuls (``bfloat16`` as in the QLoRA paper; use
            ``float16`` on GPUs without bf16, ``float32`` for exact CPU tests).
        quant_type: ``"nf4"`` (default) or ``"fp4"``.
        double_quant: also quantize the quantization constants (saves ~0.4 bit per parameter).
    """
    from transformers import BitsAndBytesConfig

    if quant_type not in ("nf4", "fp4"):
        raise UserError(f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=_dtype(compute_dtype),
    )


def load_model_4bit(
    name_or_path: str,
    *,
    compute_dtype: torch.dtype | str = torch.bfloat16,
    attn_implementation: str = "sdpa",
    gradient_checkpointing: bool = True,
    device_map: str | dict | None = "auto",
    quantization_config=None,
    **from_pretrained_kwargs: Any,
):
    """Load a causal LM in 4-bit and prepare it for k-bit training.

    Args:
        name_or_path: Hub id or local directory of the model.
        compute_dtype: see :func:`default_quantization_config`; also the dtype of the non-quantized weights.
        attn_implementation: ``"sdpa"`` (default) is what ``ConceptAwareSFTTrainer`` needs for its
            attention term.
        gradient_checkpointing: enable non-reentrant gradient checkpointing (the reentrant variant
            would leave the attention term without gradient).
        device_map: ``"auto"`` puts the model on the current accelerator (this process's GPU under
            ``accelerate launch``/``torchrun``) or on the CPU when there is none; any value of
            ``from_pretrained`` is accepted.
        quantization_config: a ``BitsAndBytesConfig`` replacing :func:`default_quantization_config`'s.
        **from_pretrained_kwargs: passed to ``AutoModelForCausalLM.from_pretrained``.
    """
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    if device_map == "auto":
        # one whole copy per process, on this process's GPU (LOCAL_RANK under accelerate launch /
        # torchrun): data-parallel QLoRA must not split the model across devices
        if torch.cuda.is_available():
            device_map = {"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))}
        else:
            device_map = None
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path,
        quantization_config=quantization_config or default_quantization_config(compute_dtype),
        dtype=_dtype(compute_dtype),
        attn_implementation=attn_implementation,
        device_map=device_map,
        **from_pretrained_kwargs,
    )
    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def default_lora_config(
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | list[str] = "all-linear",
    **kwargs: Any,
):
    """A ``peft.LoraConfig`` for causal-LM QLoRA: adapters on every linear layer except the LM head.

    The LM head stays frozen: TRL computes log-probabilities from ``lm_head.weight`` directly, so an
    adapter there would never be trained (``SFTTrainer`` refuses it).
    """
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )
