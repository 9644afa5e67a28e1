"""The private parts of TRL and transformers that ``ConceptAwareSFTTrainer`` relies on, and a check for each.

TRL and transformers may rename or change a private method in any release. The trainer overrides or calls
the ones listed in :data:`EXTENSION_POINTS`; :func:`check_extension_points` compares each with what the
trainer was written against (the parameters it overrides or calls with, and the calls inside it that the
trainer depends on), so that a changed one fails with its name instead of training silently wrong.
``ConceptAwareSFTTrainer`` runs the check when it is created; ``tests/test_extension_points.py`` runs it on
the installed versions. The list is documented in docs/training.md ("Extension points").
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from typing import Any


def tested_versions() -> str:
    """The trl and transformers versions the trainer is tested on: the bounds of the installed package's
    requirements (written once, in setup.cfg), e.g. ``"transformers<5.25,>=5.0 and trl<1.17,>=1.16"``."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("procure_trl") or []
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "the trl and transformers versions setup.cfg allows"
    return " and ".join(
        r for r in requirements if re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] in ("trl", "transformers")
    )


@dataclasses.dataclass(frozen=True)
class ExtensionPoint:
    """One private method, function or attribute of TRL or transformers the trainer depends on.

    Parameters:
        module (`str`):
            Module that defines it, e.g. ``"transformers"``.
        qualname (`str`):
            Dotted name inside the module, e.g. ``"Trainer._get_num_items_in_batch"``.
        parameters (`tuple[str, ...]` or `None`, *optional*):
            Names of its parameters in order (``self`` included for methods), which the trainer overrides or
            passes; `None` when it is not a callable (an attribute or a dataclass).
        fields (`tuple[str, ...]`, *optional*):
            Dataclass fields or attributes it must have.
        source_mentions (`tuple[str, ...]`, *optional*):
            Text its source must contain: the calls or attributes inside it that the trainer depends on.
        use (`str`, *optional*):
            How the trainer uses it (part of the failure message).
    """

    module: str
    qualname: str
    parameters: tuple[str, ...] | None = None
    fields: tuple[str, ...] = ()
    source_mentions: tuple[str, ...] = ()
    use: str = ""

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"


EXTENSION_POINTS: tuple[ExtensionPoint, ...] = (
    ExtensionPoint(
        "trl", "SFTTrainer._prepare_dataset",
        parameters=("self", "dataset", "processing_class", "args", "packing", "formatting_func", "dataset_name"),
        use="overrides it to tokenize changed_spans into the perturbation mask, calls it, then truncates the mask",
    ),
    ExtensionPoint(
        "trl", "SFTTrainer._set_signature_columns_if_needed", parameters=("self",),
        source_mentions=("self._signature_columns",),
        use="overrides it to add the mask column to self._signature_columns so the Trainer keeps it",
    ),
    ExtensionPoint(
        "transformers", "Trainer._get_num_items_in_batch", parameters=("self", "batch_samples", "device"),
        use="overrides it to return the loss's window totals (a LossNormalizer) instead of a token count",
    ),
    ExtensionPoint(
        "transformers", "Trainer.get_batch_samples", parameters=("self", "epoch_iterator", "num_batches", "device"),
        source_mentions=("self._get_num_items_in_batch(",),
        use="needs it to call _get_num_items_in_batch once per accumulation window",
    ),
    ExtensionPoint(
        "transformers", "Trainer.training_step",
        source_mentions=("self.loss_is_scaled_for_ga", "self.current_gradient_accumulation_steps"),
        use="needs it to honour loss_is_scaled_for_ga (the loss is already divided by the window totals)",
    ),
    ExtensionPoint(
        "trl", "SFTTrainer.compute_loss",
        parameters=("self", "model", "inputs", "return_outputs", "num_items_in_batch"),
        source_mentions=("fused_lm_head=True", "outputs.log_probs"),
        use="calls it with a stand-in for the model that adds the attention probe to the fused-LM-head forward, "
            "whose log_probs it reads",
    ),
    ExtensionPoint(
        "trl.trainer.sft_trainer", "DataCollatorForLanguageModeling",
        fields=("pad_token_id", "padding_free", "return_position_ids", "pad_to_multiple_of", "torch_call"),
        use="subclasses it (DataCollatorForConceptLM) and copies its fields from the collator SFTTrainer built",
    ),
    ExtensionPoint(
        "trl.trainer.utils", "pad", parameters=("tensors", "padding_value", "padding_side", "pad_to_multiple_of"),
        use="pads the perturbation mask with it, exactly like input_ids",
    ),
    ExtensionPoint(
        "transformers", "PreTrainedConfig", fields=("_attn_implementation",),
        use="reads config._attn_implementation to refuse attention functions other than sdpa (it switches "
            "them with the public PreTrainedModel.set_attn_implementation)",
    ),
    ExtensionPoint(
        "transformers.integrations.sdpa_attention", "sdpa_attention_forward",
        parameters=("module", "query", "key", "value", "attention_mask", "dropout", "scaling", "is_causal",
                    "position_bias", "kwargs"),
        use="wraps it in the concept-aware attention function (one extra value channel)",
    ),
)


@functools.cache
def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def check_extension_point(point: ExtensionPoint, target: Any = None) -> str | None:
    """Compare one extension point with what the trainer was written against.

    Parameters:
        point (`ExtensionPoint`):
            The extension point.
        target (`Any`, *optional*):
            The object to check instead of the installed one (tests pass stubs).

    Returns:
        `None` when it matches, else a one-line description naming it.
    """
    where = f"{point.name} (used by ConceptAwareSFTTrainer: {point.use})" if point.use else point.name
    if target is None:
        try:
            target = _resolve(point.module, point.qualname)
        except (ImportError, AttributeError):
            return f"{where} is gone"
    if point.parameters is not None:
        try:
            found = tuple(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            return f"{where} is no longer a function"
        if found != point.parameters:
            return f"{where} changed its parameters from ({', '.join(point.parameters)}) to ({', '.join(found)})"
    missing = [f for f in point.fields if not hasattr(target, f) and f not in _dataclass_fields(target)]
    if missing:
        return f"{where} lost {', '.join(missing)}"
    if point.source_mentions:
        try:
            source = inspect.getsource(target)
        except (OSError, TypeError):
            return f"{where}: its source cannot be read to check it"
        absent = [m for m in point.source_mentions if m not in source]
        if absent:
            return f"{where} no longer contains {', '.join(map(repr, absent))}"
    return None


def _dataclass_fields(target: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()


def check_extension_points(points: tuple[ExtensionPoint, ...] = EXTENSION_POINTS) -> list[str]:
    """Check every extension point; returns one line per changed or missing one (empty when all match)."""
    return [problem for point in points if (problem := check_extension_point(point)) is not None]


@functools.lru_cache(maxsize=1)
def _installed_problems() -> tuple[str, ...]:
    return tuple(check_extension_points())


def require_extension_points() -> None:
    """Raise ``RuntimeError`` naming every extension point the installed TRL/transformers changed."""
    problems = _installed_problems()
    if problems:
        import transformers
        import trl

        raise RuntimeError(
            f"ConceptAwareSFTTrainer cannot run on trl {trl.__version__} / transformers {transformers.__version__}: "
            + "; ".join(problems)
            + f". It is tested on {tested_versions()}: install versions in that range"
        )
