"""``ConceptAwareSFTTrainer``: TRL's ``SFTTrainer`` with the ProCURE concept-sensitive loss.

It extends ``SFTTrainer`` through its hooks and leaves the rest of TRL untouched:

* ``_prepare_dataset``: tokenizes prompt/completion rows with ``changed_spans`` into ``input_ids`` +
  ``perturbation_mask`` (exactly as TRL tokenizes them), lets TRL build labels and truncate, then
  truncates the mask the same way and checks it still lines up;
* ``_set_signature_columns_if_needed``: keeps the mask column through the Trainer's column removal;
* the data collator: TRL's collator plus padding of the mask (:class:`DataCollatorForConceptLM`);
* ``_get_num_items_in_batch``: the window totals of the loss (sum of token weights, number of
  counterfactuals), summed over the accumulation window and over processes;
* ``compute_loss``: runs ``SFTTrainer.compute_loss`` (so TRL's forward with the fused LM head and its
  metrics stay as they are) with a forward that also carries a :class:`ConceptAttentionProbe`, then
  replaces its loss with :func:`concept_sensitive_loss`;
* ``log``: adds ``loss_token``, ``loss_att`` and ``perturbed_token_fraction``, averaged over the logging
  window like TRL's own metrics.

The private ones are listed, with what the trainer needs from each, in
:mod:`procure_trl.training.extension_points`; the trainer checks them when it is created.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from accelerate.utils import is_peft_model
from datasets import Dataset
from transformers import ProcessorMixin, TrainingArguments
from trl import SFTConfig, SFTTrainer
from trl.data_utils import get_dataset_column_names
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from procure_trl.errors import UserError
from procure_trl.provenance import TOKENIZER_COLUMNS, tokenizer_fingerprint, training_data_record, write_training_data
from procure_trl.training.attention import ConceptAttentionProbe, enable_concept_attention
from procure_trl.training.collator import DataCollatorForConceptLM
from procure_trl.training.config import ConceptAwareSFTConfig, parse_attention_layers, resolve_attention_layers
from procure_trl.training.data import (
    VersionedRowFunction,
    check_concept_row,
    concept_dataset_kind,
    keep_originals,
    tokenize_concept_row,
    training_prompt_format,
    truncate_mask,
)
from procure_trl.training.extension_points import require_extension_points
from procure_trl.training.loss import (
    LossNormalizer,
    concept_sensitive_loss,
    is_counterfactual,
    token_weight_total,
    window_normalizer,
)

#: Key of the padded mask in a collated batch.
BATCH_MASK_KEY = "perturbation_mask"
#: Key of the collator's count of counterfactual rows (a plain int) in a collated batch.
BATCH_COUNTERFACTUALS_KEY = "num_counterfactuals"
# plain-int counts DataCollatorForConceptLM adds to a batch
_COLLATOR_COUNTS = (
    BATCH_COUNTERFACTUALS_KEY, "num_label_tokens", "num_perturbed_label_tokens", "num_original_label_tokens"
)


class _ProbedForward:
    """Callable standing in for the model inside ``SFTTrainer.compute_loss``.

    It adds the probe to the fused-LM-head forward and keeps that forward's outputs, so TRL computes
    its metrics from the very forward whose log-probabilities and attention mass make our loss. Calls
    without the fused head (logits for ``compute_metrics``) go to the model unchanged.
    """

    def __init__(self, model: torch.nn.Module, probe: ConceptAttentionProbe | None):
        self.model = model
        self.probe = probe
        self.fused_outputs = None

    def __call__(self, **kwargs):
        if kwargs.get("fused_lm_head") and self.fused_outputs is None:
            if self.probe is not None:
                kwargs["concept_probe"] = self.probe
            self.fused_outputs = self.model(**kwargs)
            return self.fused_outputs
        return self.model(**kwargs)


class ConceptAwareSFTTrainer(SFTTrainer):
    """Supervised fine-tuning on original + counterfactual programs with the ProCURE loss.

    Same arguments as ``trl.SFTTrainer``; ``args`` should be a :class:`ConceptAwareSFTConfig` (an
    ``SFTConfig`` or ``TrainingArguments`` is converted with the default ProCURE settings). The
    datasets hold prompt/completion rows with ``changed_spans`` or pre-tokenized rows with
    ``input_ids`` + ``perturbation_mask`` (column names configurable). The model must use
    ``attn_implementation="sdpa"`` when ``concept_loss_weight > 0``; the trainer switches it to the
    registered concept-aware SDPA function (same kernels, same outputs).

    The loss and its reduction over batches, accumulation windows and processes are defined in
    :mod:`procure_trl.training.loss`.

    Every saved model (and checkpoint) gets ``procure_training_data.json`` beside it: the training dataset, its
    prompt format (:mod:`procure_trl.dataset.prompt_format`: ``procure evaluate --adapter`` renders prompts in it),
    config, split, fingerprint and task ids (:mod:`procure_trl.provenance`), so that evaluation can refuse to
    score the model on its own training tasks. ``train_dataset_origin`` (``{"dataset", "config", "split"}``)
    names where ``train_dataset`` came from; without it the dataset's own info is used. A pre-tokenized
    dataset whose ``tokenizer_fingerprint`` column names another tokenizer than ``processing_class`` is refused.
    """

    _tag_names = ["trl", "sft", "procure"]
    _name = "ConceptAwareSFT"
    # compute_loss divides by totals of the whole accumulation window (see _get_num_items_in_batch)
    loss_is_scaled_for_ga = True  # type: ignore[assignment]  # transformers declares the opt-in as None-typed
    args: ConceptAwareSFTConfig  # __init__ turns whatever it is given into one

    def __init__(
        self,
        model,
        args: ConceptAwareSFTConfig | SFTConfig | TrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        train_dataset_origin: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        require_extension_points()
        if isinstance(args, ConceptAwareSFTConfig) and args.train_on == "originals" and train_dataset is not None:
            # the plain-SFT baseline without counterfactual data: the rows go before anything is recorded or tokenized
            train_dataset = keep_originals(train_dataset, spans_column=args.changed_spans_column,
                                           mask_column=args.perturbation_mask_column)
        # Read from the rows as given (before tokenization), so the task ids are the dataset's own.
        self._training_data = (
            training_data_record(train_dataset, train_dataset_origin) if train_dataset is not None else None
        )
        if self._training_data is not None:  # evaluation renders prompts in the format the model was trained in
            self._training_data["prompt_format"] = (
                (train_dataset_origin or {}).get("prompt_format") or training_prompt_format(train_dataset)
            )
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path or "model"
            args = ConceptAwareSFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-ConceptAwareSFT")
        elif not isinstance(args, ConceptAwareSFTConfig):
            # raw field values: to_dict() would redact every *_token field (eos_token, pad_token, hub_token)
            values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
            known = {f.name for f in dataclasses.fields(ConceptAwareSFTConfig)}
            args = ConceptAwareSFTConfig(**{k: v for k, v in values.items() if k in known})
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("ConceptAwareSFTTrainer computes its own loss; do not pass compute_loss_func")
        if args.label_smoothing_factor > 0 or args.loss_type != "nll":
            raise UserError(
                "ConceptAwareSFTTrainer supports loss_type='nll' without label smoothing (got "
                f"loss_type={args.loss_type!r}, label_smoothing_factor={args.label_smoothing_factor})"
            )
        checkpointing = args.gradient_checkpointing_kwargs
        if args.gradient_checkpointing and isinstance(checkpointing, dict) and checkpointing.get("use_reentrant"):
            raise UserError(
                "reentrant gradient checkpointing runs the forward without autograd, so the attention term would get "
                "no gradient; set gradient_checkpointing_kwargs={'use_reentrant': False} (the default)"
            )
        # SFTTrainer loads a model given by name in its __init__: check the columns first, so a wrong dataset
        # fails in a second, not after the weights load
        for split_name, dataset in (("train", train_dataset), ("eval", eval_dataset)):
            columns = getattr(dataset, "column_names", None)
            if isinstance(columns, list):  # a Dataset (an IterableDataset may not know its columns yet)
                concept_dataset_kind(columns, args.perturbation_mask_column, args.changed_spans_column, split_name)
        self._custom_collator = data_collator is not None
        self._pending_concept_stats: dict[str, list[torch.Tensor]] = {}
        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )

        if not self._custom_collator and isinstance(self.data_collator, DataCollatorForLanguageModeling):
            # SFTTrainer built its collator (pad token settled); ours adds the mask and pads it the same way
            self.data_collator = DataCollatorForConceptLM(
                pad_token_id=self.data_collator.pad_token_id,
                padding_free=self.data_collator.padding_free,
                return_position_ids=self.data_collator.return_position_ids,
                pad_to_multiple_of=self.data_collator.pad_to_multiple_of,
                perturbation_mask_key=args.perturbation_mask_column,
            )

        # a PeftModel (untyped in transformers' Trainer.model) or the model itself
        base_model: Any = self.model.get_base_model() if is_peft_model(self.model) else self.model  # type: ignore[union-attr,operator]
        num_layers = base_model.config.get_text_config().num_hidden_layers
        # the config normalised the setting already; parsing again narrows its declared type (str is a CLI form)
        self.attention_layers = resolve_attention_layers(parse_attention_layers(args.attention_layers), num_layers)
        if args.concept_loss_weight > 0:
            enable_concept_attention(base_model)

    # ----------------------------------------------------------------------------------------- data
    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        mask_column, spans_column = args.perturbation_mask_column, args.changed_spans_column
        kind = concept_dataset_kind(get_dataset_column_names(dataset), mask_column, spans_column, dataset_name)
        map_kwargs: dict[str, Any] = {"with_indices": True}
        if isinstance(dataset, Dataset):  # IterableDataset.map takes neither num_proc nor desc
            map_kwargs["num_proc"] = args.dataset_num_proc
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class
        if kind == "spans":
            if formatting_func is not None:
                raise ValueError(
                    "a formatting_func would rewrite the text and invalidate changed_spans; format prompt/completion "
                    "before building the counterfactual dataset"
                )
            if isinstance(dataset, Dataset):
                map_kwargs["desc"] = f"Tokenizing {dataset_name} dataset with perturbation masks"
            dataset = dataset.map(
                VersionedRowFunction(tokenize_concept_row),
                fn_kwargs={"tokenizer": tokenizer, "spans_column": spans_column, "mask_column": mask_column,
                           "message_column": args.changed_message_column,
                           "assistant_only_loss": args.assistant_only_loss},
                **map_kwargs,
            )
        else:
            if isinstance(dataset, Dataset):
                map_kwargs["desc"] = f"Checking {dataset_name} perturbation masks"
            expected = {
                "tokenizer_name": str(getattr(tokenizer, "name_or_path", "")),
                "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
            }
            # map (not a loop) so that IterableDatasets are checked lazily, row by row
            dataset = dataset.map(
                VersionedRowFunction(check_concept_row), fn_kwargs={"mask_column": mask_column, "tokenizer": expected},
                **map_kwargs,
            )
            present = [c for c in TOKENIZER_COLUMNS if c in (get_dataset_column_names(dataset) or [])]
            if present:  # checked; strings the collator has no use for
                dataset = dataset.remove_columns(present)

        dataset = super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)

        if args.max_length is not None:
            if isinstance(dataset, Dataset):
                map_kwargs["desc"] = f"Truncating {dataset_name} perturbation masks"
            dataset = dataset.map(
                VersionedRowFunction(truncate_mask),
                fn_kwargs={
                    "mask_column": mask_column,
                    "max_length": args.max_length,
                    "keep_end": args.truncation_mode == "keep_end",
                },
                **map_kwargs,
            )
        return dataset

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self._training_data is not None and self.args.should_save:
            target = output_dir or self.args.output_dir
            assert target is not None  # TrainingArguments always sets output_dir
            write_training_data(target, self._training_data)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.args.perturbation_mask_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.args.perturbation_mask_column]

    # ----------------------------------------------------------------------------------------- loss
    def _get_num_items_in_batch(  # type: ignore[override]  # the totals our compute_loss reads, not a count
        self, batch_samples: list, device: torch.device
    ) -> LossNormalizer | None:
        """Window totals of the loss: ``sum w_t`` and the number of counterfactuals, over all micro-batches
        of the accumulation window and (with ``average_tokens_across_devices``) over all processes."""
        if not batch_samples or "labels" not in batch_samples[0] or BATCH_MASK_KEY not in batch_samples[0]:
            return None
        alpha, token_loss = self.args.perturbed_token_weight, self.args.token_loss
        if all(k in b for b in batch_samples for k in _COLLATOR_COUNTS):
            # the collator counted on the CPU
            weight = sum(
                token_weight_total(b["num_label_tokens"], b[
                    "num_perturbed_label_tokens"
                ], b["num_original_label_tokens"],
                                   alpha, token_loss)
                for b in batch_samples
            )
            counterfactuals = sum(b[BATCH_COUNTERFACTUALS_KEY] for b in batch_samples)
            totals = torch.tensor([weight, counterfactuals], dtype=torch.float64, device=device)
        else:
            parts = [window_normalizer(b["labels"], b[BATCH_MASK_KEY], alpha, token_loss) for b in batch_samples]
            # float64: exact integer-valued sums far beyond float32's 2**24
            totals = torch.stack(
                [torch.stack([p.token_weight.double(), p.counterfactuals.double()]).to(device) for p in parts]
            ).sum(dim=0)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            totals = self.accelerator.gather(totals[None]).sum(dim=0)
        return LossNormalizer(token_weight=totals[0].float(), counterfactuals=totals[1].float())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model is not None and self.model.training else "eval"
        if BATCH_MASK_KEY not in inputs:
            raise KeyError(
                f"the batch has no {BATCH_MASK_KEY!r} (keys: {sorted(inputs)}); a custom data_collator must pad the "
                "perturbation mask like procure_trl.training.DataCollatorForConceptLM does"
            )
        delta = inputs.pop(BATCH_MASK_KEY)
        num_counterfactuals = inputs.pop(BATCH_COUNTERFACTUALS_KEY, None)
        for key in _COLLATOR_COUNTS[1:]:
            inputs.pop(key, None)
        labels = inputs["labels"]
        if delta.shape != labels.shape:
            raise ValueError(
                f"perturbation_mask {tuple(delta.shape)} and labels {tuple(labels.shape)} differ in shape; "
                "the mask must be padded together with input_ids"
            )
        lam = self.args.concept_loss_weight
        if num_counterfactuals is None:  # a custom collator: count on the device (one sync)
            num_counterfactuals = int(is_counterfactual(labels, delta).sum())
        probe = None
        if lam > 0 and num_counterfactuals > 0:
            probe = ConceptAttentionProbe(delta, self.attention_layers)

        forward = _ProbedForward(model, probe)
        result = super().compute_loss(forward, inputs, return_outputs=return_outputs, num_items_in_batch=None)
        outputs = forward.fused_outputs
        if outputs is None:
            raise RuntimeError(
                "SFTTrainer.compute_loss did not call the model with fused_lm_head=True, so the concept-aware loss has "
                "no log-probabilities; this TRL version changed it (see procure_trl.training.extension_points)"
            )
        mass = probe.attention_mass() if probe is not None else None
        if mass is not None and torch.is_grad_enabled() and self.model.training and not mass.requires_grad:
            raise RuntimeError(
                "the attention mass has no gradient (reentrant gradient checkpointing or a frozen model?); use "
                "gradient_checkpointing_kwargs={'use_reentrant': False}"
            )

        normalizer = num_items_in_batch if isinstance(num_items_in_batch, LossNormalizer) else None
        parts = concept_sensitive_loss(
            -outputs.log_probs,
            labels,
            delta,
            mass,
            alpha=self.args.perturbed_token_weight,
            lam=lam,
            eps=self.args.attention_loss_eps,
            normalizer=normalizer,
            token_loss=self.args.token_loss,
        )
        loss = parts.loss
        if normalizer is not None:
            # DDP averages gradients over processes while the totals already span all of them
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes
        elif self.model.training:
            # no window totals: a per-micro-batch mean, averaged over the accumulation steps
            loss = loss / getattr(self, "current_gradient_accumulation_steps", 1)
        self._log_concept_metrics(parts, mode)
        return (loss, result[1]) if return_outputs else loss

    def _log_concept_metrics(self, parts, mode: str) -> None:
        # kept on the device until `log` (no host sync per step), like the loss the Trainer accumulates
        stats = torch.stack(
            [
                parts.token_sum.detach().float(),
                parts.token_weight.float(),
                parts.attention_sum.detach().float(),
                parts.counterfactuals.float(),
                parts.perturbed_tokens.float(),
                parts.label_tokens.float(),
            ]
        )
        if self.accelerator.num_processes > 1:
            stats = self.accelerator.gather(stats[None]).sum(dim=0)
        self._pending_concept_stats.setdefault(mode, []).append(stats)

    def _concept_metrics(self, mode: str) -> dict[str, float]:
        """Averages of the per-step statistics since the last log of ``mode`` (each step weighs the same,
        as in TRL's own metrics); ``loss_att`` over the steps that had counterfactuals."""
        pending = self._pending_concept_stats.pop(mode, [])
        if not pending:
            return {}
        rows = torch.stack(pending).tolist()
        metrics = {
            "loss_token": sum(r[0] / max(r[1], 1.0) for r in rows) / len(rows),
            "perturbed_token_fraction": sum(r[4] / max(r[5], 1.0) for r in rows) / len(rows),
        }
        attention = [r[2] / r[3] for r in rows if r[3] > 0]
        if attention:
            metrics["loss_att"] = sum(attention) / len(attention)
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model is not None and self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""  # evaluation logs carry the prefix (as TRL adds it)
        logs.update({prefix + key: value for key, value in self._concept_metrics(mode).items()})
        super().log(logs, start_time)
