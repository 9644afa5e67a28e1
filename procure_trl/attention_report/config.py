"""What ``procure attention-report`` measures: :class:`AttentionReportConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from procure_trl.errors import UserError
from procure_trl.evaluation.model_loading import DTYPES, ModelArguments

__all__ = ["AttentionReportConfig", "DTYPES"]


@dataclass
class AttentionReportConfig(ModelArguments):
    r"""Settings of one attention report (every field is a ``procure attention-report`` option). The model fields
    (`model`, `adapter`, `dtype`, `device`, `trust_remote_code`, `load_in_4bit` and the adapter guards
    `allow_train_overlap`, `allow_base_mismatch`) are :class:`~procure_trl.evaluation.model_loading.ModelArguments`,
    documented there and shared with ``procure evaluate``.

    Parameters:
        dataset (`str`):
            A counterfactual dataset made by `procure build`: its output folder, a `save_to_disk` folder, or a
            Hub id.
        output_dir (`str`, defaults to `"outputs/attention-report"`):
            Where `attention_report.json` and `attention_by_layer.png` are written.
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
    """

    # kw_only: a field without a default after the shared model block's fields with defaults
    dataset: str = field(
        kw_only=True, metadata={"help": "counterfactual dataset from `procure build`: folder or Hub id"}
    )
    output_dir: str = field(
        default="outputs/attention-report",
        metadata={"help": "output directory (attention_report.json, attention_by_layer.png)"},
    )
    dataset_config: str = field(default="all", metadata={"help": "dataset config: all or one concept"})
    split: str = field(default="test", metadata={"help": "dataset split to measure on"})
    limit: int | None = field(default=None, metadata={"help": "measure only the first N counterfactual rows"})
    batch_size: int = field(default=8, metadata={"help": "rows per forward pass"})
    max_length: int | None = field(
        default=1024, metadata={"help": "a longer row keeps its first N tokens, as in training"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit={self.limit} must be >= 1, or None for every row")
        if self.batch_size < 1:
            raise UserError(f"batch_size={self.batch_size} must be >= 1")
        if self.max_length is not None and self.max_length < 2:
            raise UserError(f"max_length={self.max_length} must be >= 2 tokens, or None for no cut")
