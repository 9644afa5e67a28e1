"""Configuration of :class:`~procure_trl.training.ConceptAwareSFTTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trl import SFTConfig

from procure_trl.errors import UserError
from procure_trl.training.loss import TOKEN_LOSSES

#: Values of ``train_on``: every row, or the original programs only.
TRAIN_ON = ("all", "originals")


def parse_attention_layers(value: list[int] | int | str | None) -> list[int] | int | None:
    """Normalise the ``attention_layers`` setting.

    Accepts ``None`` / ``"all"`` (every layer), an ``int`` ``k`` (the top ``k`` layers), a list of
    layer indices (negative indices count from the top, as in Python), or the command-line forms of
    those: ``"all"``, ``"4"`` (a count), ``"0,2,5"`` / ``"[0, 2, 5]"`` / ``"-1,"`` (indices).
    """
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise UserError(f"attention_layers must be a layer count, a list of indices or 'all', got {value!r}")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "all", "none", "null"):
            return None
        is_list = any(c in text for c in ",[]")
        parts = [p.strip() for p in text.strip("[]").split(",") if p.strip()]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise UserError(
                f"attention_layers={value!r} is not understood; use 'all', a count such as '4' (the top 4 layers) "
                "or indices such as '0,2,5' or '[-1]'"
            ) from None
        if is_list:
            return numbers
        if len(numbers) != 1:
            raise UserError(f"attention_layers={value!r}: separate layer indices with commas, e.g. '0,2,5'")
        return numbers[0]
    try:
        return [int(i) for i in value]
    except (TypeError, ValueError):
        raise UserError(
            f"attention_layers must be a layer count, a list of indices or 'all', got {value!r}"
        ) from None


def resolve_attention_layers(value: list[int] | int | None, num_layers: int) -> list[int]:
    """The sorted decoder-layer indices selected by ``value`` for a model with ``num_layers`` layers.

    Raises ``ValueError`` naming the allowed range when a count or an index is out of range.
    """
    value = parse_attention_layers(value)
    if value is None:
        return list(range(num_layers))
    if isinstance(value, int):
        if not 1 <= value <= num_layers:
            raise UserError(
                f"attention_layers={value} asks for the top {value} layers but the model has {num_layers} decoder "
                f"layers; use a count between 1 and {num_layers}, a list of indices, or None for all layers"
            )
        return list(range(num_layers - value, num_layers))
    if not value:
        raise UserError("attention_layers is an empty list; give at least one layer index, or None for all layers")
    resolved = set()
    for index in value:
        if not -num_layers <= index < num_layers:
            raise UserError(
                f"attention_layers contains layer index {index}, out of range for a model with {num_layers} decoder "
                f"layers (valid: 0..{num_layers - 1}, or -{num_layers}..-1 counting from the top)"
            )
        resolved.add(index % num_layers)
    return sorted(resolved)


@dataclass
class ConceptAwareSFTConfig(SFTConfig):
    r"""Configuration for :class:`~procure_trl.training.ConceptAwareSFTTrainer`.

    Everything of TRL's ``SFTConfig`` applies; these fields add the ProCURE loss. Per counterfactual
    sample ``L = L_token + concept_loss_weight * L_att`` with token weights
    ``w_t = 1 + perturbed_token_weight * delta_t`` (see :mod:`procure_trl.training.loss`).

    Parameters:
        concept_loss_weight (`float`, defaults to `0.1`):
            lambda, the weight of the attention term ``L_att``. ``0`` trains with the weighted token
            term only (no attention mass is computed).
        perturbed_token_weight (`float`, defaults to `1.0`):
            alpha: perturbed completion tokens weigh ``1 + alpha`` in the token term.
        token_loss (`str`, defaults to `"weighted"`):
            How the paper's masked-token term is read. ``"weighted"``: the NLL of every completion
            token, perturbed ones weighted ``1 + alpha``. ``"perturbed_only"``: a counterfactual's NLL
            over its perturbed tokens only (``alpha`` is not used; originals keep the plain NLL).
        train_on (`str`, defaults to `"all"`):
            Which rows to train on. ``"all"``: originals and counterfactuals. ``"originals"``: the original programs
            only (rows whose ``concept`` is ``original``, or without a ``concept`` column the rows with no changed
            span): the plain-SFT baseline without the counterfactual data, which separates the effect of the data
            from that of the loss.
        attention_layers (`list[int]`, `int` or `str`, *optional*):
            Decoder layers whose attention mass enters ``L_att`` (averaged over them and over heads).
            ``None`` (default) or ``"all"``: every layer; an int ``k``: the top ``k`` layers; a list
            of indices (negative ones count from the top). On the command line: ``all``, ``4`` or
            ``0,2,5``.
        attention_loss_eps (`float`, defaults to `1e-6`):
            epsilon in ``-log(eps + m_q)``: bounds the loss of a query that ignores all perturbed keys.
        perturbation_mask_column (`str`, defaults to `"perturbation_mask"`):
            Column of pre-tokenized rows holding the 0/1 mask aligned with ``input_ids``.
        changed_spans_column (`str`, defaults to `"changed_spans"`):
            Column of prompt/completion rows holding ``[start, end)`` character spans into the
            completion (empty for originals).
        changed_message_column (`str`, defaults to `"changed_message"`):
            Column of conversational rows holding the index of the message whose content the spans
            index (in ``messages``, or in the ``completion`` messages); absent: the last assistant message.
        overwrite_output_dir (`bool`, defaults to `False`):
            Train into an ``output_dir`` that already holds a trained model or checkpoints, replacing them.
            Without it (or ``resume_from_checkpoint``) ``procure train`` refuses such a folder. transformers 5
            dropped its own field of this name, so it is ProCURE's.
    """

    concept_loss_weight: float = field(
        default=0.1,
        metadata={"help": "lambda: weight of the attention term L_att of counterfactual samples (>= 0)."},
    )
    perturbed_token_weight: float = field(
        default=1.0,
        metadata={"help": "alpha: perturbed completion tokens weigh 1 + alpha in the token term (>= 0)."},
    )
    token_loss: Literal["weighted", "perturbed_only"] = field(
        default="weighted",
        metadata={
            "help": "Reading of the masked-token term: 'weighted' (every completion token, perturbed ones weigh "
            "1 + alpha) or 'perturbed_only' (a counterfactual's NLL over its perturbed tokens only; alpha unused).",
        },
    )
    train_on: Literal["all", "originals"] = field(
        default="all",
        metadata={"help": "Rows trained on: 'all' (originals and counterfactuals) or 'originals' (the original "
                  "programs only: SFT without the counterfactual data)."},
    )
    # `list[int] | str | int` so that HfArgumentParser/TrlParser read it as a string on the command line
    attention_layers: list[int] | str | int | None = field(
        default=None,
        metadata={
            "help": "Decoder layers used by the attention term: 'all' (default), a count of top layers (e.g. 4) "
            "or comma-separated indices (e.g. 0,2,5; negative indices count from the top)."
        },
    )
    attention_loss_eps: float = field(
        default=1e-6,
        metadata={"help": "epsilon in -log(eps + m_q) of the attention term (> 0)."},
    )
    perturbation_mask_column: str = field(
        default="perturbation_mask",
        metadata={"help": "Column with the per-token 0/1 perturbation mask of pre-tokenized rows."},
    )
    changed_spans_column: str = field(
        default="changed_spans",
        metadata={"help": "Column with [start, end) character spans into the completion (prompt/completion rows)."},
    )
    changed_message_column: str = field(
        default="changed_message",
        metadata={"help": "Column with the index of the message the spans of a conversational row refer to."},
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the trained model or checkpoints already in output_dir (without it, or "
                          "resume_from_checkpoint, such a folder is refused)."},
    )

    def _resolve_checkpointing_aliases(self) -> None:
        """transformers 5 renamed ``gradient_checkpointing[_kwargs]`` to ``activation_checkpointing[_kwargs]`` and
        warns (FutureWarning) whenever only the old name is set, which TRL's ``SFTConfig`` default always does: every
        ``procure train`` printed it. Carry the value over to the new name as transformers would, without the
        warning; on a transformers without the new names nothing changes."""
        for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                         ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
            if hasattr(self, new) and getattr(self, new) is None and getattr(self, old, None) is not None:
                setattr(self, new, getattr(self, old))

    def __post_init__(self):
        self._resolve_checkpointing_aliases()
        super().__post_init__()
        if self.concept_loss_weight is None or self.concept_loss_weight < 0:
            raise UserError(
                f"concept_loss_weight (lambda) must be >= 0, got {self.concept_loss_weight}; use 0 to disable the "
                "attention term"
            )
        if self.perturbed_token_weight is None or self.perturbed_token_weight < 0:
            raise UserError(
                f"perturbed_token_weight (alpha) must be >= 0, got {self.perturbed_token_weight}; use 0 for "
                "unweighted tokens"
            )
        if self.train_on not in TRAIN_ON:
            raise UserError(f"train_on={self.train_on!r} is not one of {', '.join(TRAIN_ON)}")
        if self.token_loss not in TOKEN_LOSSES:
            raise UserError(f"token_loss={self.token_loss!r} is not one of {', '.join(TOKEN_LOSSES)}")
        if not self.attention_loss_eps > 0:
            raise UserError(f"attention_loss_eps must be > 0, got {self.attention_loss_eps}")
        self.attention_layers = parse_attention_layers(self.attention_layers)
        if isinstance(self.attention_layers, int) and self.attention_layers < 1:
            raise UserError(
                f"attention_layers={self.attention_layers}: a layer count must be >= 1 (or use a list of indices)"
            )
        if self.packing or self.padding_free:
            raise UserError(
                "ConceptAwareSFTTrainer does not support packing or padding_free: the attention term is per sample "
                "and needs each sample in its own row. Set packing=False and padding_free=False."
            )
