"""What ``procure attention-report`` measures: :class:`AttentionReportConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["AttentionReportConfig", "DTYPES"]

DType = Literal["float32", "bfloat16", "float16", "auto"]
DTYPES: tuple[str, ...] = get_args(DType)


@dataclass
class AttentionReportConfig:
    r"""Settings of one attention report (every field is a ``procure attention-report`` option).

    Parameters:
        model (`str`):
            A Hub model id or a local directory with a causal LM and its tokenizer (the base model).
        dataset (`str`):
            A counterfactual dataset made by `procure build`: its output folder, a `save_to_disk` folder, or a
            Hub id.
        output_dir (`str`, defaults to `"outputs/attention-report"`):
            Where `attention_report.json` and `attention_by_layer.png` are written.
        adapter (`str`, *optional*):
            A PEFT adapter directory trained on top of `model`; when given, both the base model and the model
            with the adapter are measured.
        dataset_config (`str`, defaults to `"all"`):
            Config (subset) of the dataset: `all` or one concept.
        split (`str`, defaults to `"test"`):
            Split of the dataset to measure on.
        limit (`int`, *optional*):
            Measure only the first `limit` counterfactual rows of the split; `None`: all.
        batch_size (`int`, defaults to `8`):
            Rows per forward pass.
        max_length (`int`, *optional*, defaults to `1024`):
            A longer row keeps its first `max_length` tokens (as the trainer cuts rows); `None`: no cut.
        dtype (`str`, defaults to `"float32"`):
            Weights' dtype (`float32`, `bfloat16`, `float16`, `auto`).
        device (`str`, *optional*):
            Torch device; `None`: CUDA when available, else CPU.
        trust_remote_code (`bool`, defaults to `False`):
            Allow model repositories with custom code.
        allow_train_overlap (`bool`, defaults to `False`):
            Measure an adapter on tasks it was trained on (its `procure_training_data.json` lists them); refused by
            default.
        allow_base_mismatch (`bool`, defaults to `False`):
            Load an adapter on another base model than the one in its `adapter_config.json`; refused by default.
    """

    model: str = field(metadata={"help": "Hub model id or local directory of the base causal LM"})
    dataset: str = field(metadata={"help": "counterfactual dataset from `procure build`: folder or Hub id"})
    output_dir: str = field(
        default="outputs/attention-report",
        metadata={"help": "output directory (attention_report.json, attention_by_layer.png)"},
    )
    adapter: str | None = field(
        default=None, metadata={"help": "PEFT adapter directory; base and adapter are then both measured"}
    )
    dataset_config: str = field(default="all", metadata={"help": "dataset config: all or one concept"})
    split: str = field(default="test", metadata={"help": "dataset split to measure on"})
    limit: int | None = field(default=None, metadata={"help": "measure only the first N counterfactual rows"})
    batch_size: int = field(default=8, metadata={"help": "rows per forward pass"})
    max_length: int | None = field(default=1024, metadata={"help": "a longer row keeps its first N tokens, as in training"})
    dtype: DType = field(default="float32", metadata={"help": "weights dtype"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda when available)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model repositories with custom code"})
    allow_train_overlap: bool = field(
        default=False, metadata={"help": "measure an adapter on tasks it was trained on (refused by default)"}
    )
    allow_base_mismatch: bool = field(
        default=False,
        metadata={"help": "load an adapter on another base model than its adapter_config.json names (refused by "
                          "default)"},
    )

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be >= 1, or None for every row")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length={self.max_length} must be >= 2 tokens, or None for no cut")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; use one of {', '.join(DTYPES)}")
