"""Run a training recipe: the library side of ``procure train --config recipe.yaml``.

A recipe is a YAML file read by TRL's ``TrlParser`` into three dataclasses: TRL's ``ScriptArguments``
(the dataset), :class:`~procure_trl.training.ConceptAwareSFTConfig` (training and the ProCURE loss)
and TRL's ``ModelConfig`` (model, 4-bit loading, LoRA). Command-line flags override the file.
"""

from __future__ import annotations

import os
from typing import Any

from procure_trl.errors import UserError


#: Files that show a finished ``save_model``: a PEFT adapter, or a full model (single file or sharded).
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def saved_weights(folder: str) -> bool:
    """Whether ``folder`` holds a saved adapter or model (``save_model`` writes the weights last)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in _ADAPTER_WEIGHTS + _MODEL_WEIGHTS)


def check_output_dir(training_args) -> None:
    """Refuse an ``output_dir`` that holds a trained model or checkpoints, unless ``overwrite_output_dir`` (replace
    them) or ``resume_from_checkpoint`` (continue one) says what to do with it: a finished training is never
    replaced silently, and an interrupted one is not restarted from scratch over its checkpoints."""
    folder = training_args.output_dir
    if not folder or training_args.resume_from_checkpoint or getattr(training_args, "overwrite_output_dir", False):
        return
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"output_dir {folder} is a file, not a folder; choose another output_dir")
    if saved_weights(folder):
        raise UserError(f"output_dir {folder} already holds a trained model; pass --overwrite_output_dir true to "
                        "replace it, --resume_from_checkpoint CHECKPOINT to continue a training, or choose another "
                        "output_dir")
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(folder) if os.path.isdir(folder) else None
    if checkpoint:
        raise UserError(f"output_dir {folder} holds the checkpoints of an unfinished training; continue it with "
                        f"--resume_from_checkpoint {checkpoint}, replace it with --overwrite_output_dir true, or "
                        "choose another output_dir")


def check_some_steps(training_args, train_dataset=None) -> None:
    """Refuse a run that would take no optimizer step: it would save an untrained model as if trained (and an empty
    dataset makes torch's sampler fail with ``num_samples=0``). ``train_dataset``: the rows the trainer kept."""
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise UserError(f"max_steps {training_args.max_steps} and num_train_epochs {training_args.num_train_epochs} "
                        "make no optimizer step; set max_steps > 0 or num_train_epochs > 0")
    if train_dataset is not None and hasattr(train_dataset, "__len__") and len(train_dataset) == 0:
        raise UserError(f"no training row is left after truncation to max_length={training_args.max_length} (rows "
                        "whose completion is cut away entirely are dropped); raise max_length or use shorter rows")


def recipe_parser():
    """The ``TrlParser`` over ``(ScriptArguments, ConceptAwareSFTConfig, ModelConfig)``."""
    from trl import ModelConfig, ScriptArguments, TrlParser

    from procure_trl.training.config import ConceptAwareSFTConfig

    return TrlParser((ScriptArguments, ConceptAwareSFTConfig, ModelConfig), prog="procure train")


def _name_recipe_field(message: str, config_path: str | None, overrides: list[str]) -> str:
    """argparse's ``argument --lr/--l-r: invalid float value: 'fast'`` as ``recipe r.yaml: field lr: ...`` when the
    value came from the recipe file (TrlParser hands the file's values to argparse as flags), else unchanged."""
    import re

    match = re.match(r"argument --([\w-]+)(?:/--[\w-]+)*: (.*)", message)
    if not match or not config_path:
        return message
    name = match.group(1).replace("-", "_")
    given = {token[2:].split("=", 1)[0].replace("-", "_") for token in overrides if token.startswith("--")}
    return message if name in given else f"recipe {config_path}: field {name}: {match.group(2)}"


def parse_recipe(config_path: str | None, overrides: list[str]):
    """``(script_args, training_args, model_args)`` from a recipe file and ``--name value`` overrides.

    A value the configs refuse (``concept_loss_weight: -1``) is a :class:`UserError` naming it.
    """
    argv = (["--config", config_path] if config_path else []) + list(overrides)
    parser = recipe_parser()

    def one_line(message: str):  # argparse would print the usage of all the recipe fields first
        raise UserError(f"{_name_recipe_field(message, config_path, overrides)}; `procure train --show-options` "
                        "lists every field and its type")

    parser.error = one_line
    try:
        return parser.parse_args_and_config(argv)
    except UserError:
        raise
    except ValueError as err:
        raise UserError(f"recipe {config_path or '(command line)'}: {' '.join(str(err).split())}") from err


def check_dataset_columns(dataset, training_args, dataset_name: str = "train") -> str:
    """The row schema of ``dataset`` (``"spans"`` or ``"tokenized"``), or a :class:`UserError` naming the missing
    columns; the recipe runs it before loading the model, so a wrong dataset fails in seconds."""
    from procure_trl.training.data import concept_dataset_kind

    columns = getattr(dataset, "column_names", None)
    if columns is None:  # an IterableDataset without resolved features: the trainer checks rows as they come
        return "unknown"
    try:
        return concept_dataset_kind(
            columns, training_args.perturbation_mask_column, training_args.changed_spans_column, dataset_name
        )
    except ValueError as err:
        raise UserError(str(err)) from err


def load_training_datasets(script_args) -> tuple[Any, Any]:
    """``(train, eval)`` from ``dataset_name``: a Hub id, a folder written by ``procure build``
    (Parquet + card), a ``save_to_disk`` folder, or a ``.jsonl``/``.json``/``.parquet`` file."""
    from datasets import DatasetDict, load_dataset

    from procure_trl.counterfactual_dataset import load_dataset_dict, select_split

    name = script_args.dataset_name
    if not name:
        raise UserError(
            "the recipe sets no dataset_name; point it at a counterfactual dataset (a Hub id or the output folder "
            "of procure build)"
        )
    config = None  # a single file has no configs
    if os.path.isfile(name):
        ext = name.rsplit(".", 1)[-1].lower()
        builder = {"jsonl": "json", "json": "json", "parquet": "parquet"}.get(ext)
        if builder is None:
            raise UserError(f"dataset file {name!r}: expected .jsonl, .json or .parquet")
        dataset = load_dataset(builder, data_files=name)
    else:
        config = script_args.dataset_config
        try:
            dataset = load_dataset_dict(name, config, streaming=script_args.dataset_streaming)
        except (FileNotFoundError, ValueError) as err:
            raise UserError(str(err)) from err
    if not isinstance(dataset, (dict, DatasetDict)) and not hasattr(dataset, "keys"):
        return dataset, None  # a save_to_disk folder of one Dataset: it is the train split
    try:
        train = select_split(dataset, name, script_args.dataset_train_split, config)
    except ValueError as err:
        raise UserError(f"{err}; set dataset_train_split") from err
    eval_split = dataset.get(script_args.dataset_test_split) if script_args.dataset_test_split else None
    return train, eval_split


def load_model_for_recipe(model_args, training_args):
    """``(model, peft_config)``: a 4-bit model prepared for k-bit training when ``load_in_4bit``,
    otherwise the model id (the trainer loads it with ``model_init_kwargs``)."""
    from procure_trl.qlora import default_lora_config, get_quantization_config, load_model_4bit

    if not model_args.model_name_or_path:
        raise UserError("the recipe sets no model_name_or_path")
    if model_args.load_in_8bit:
        raise UserError("load_in_8bit is not supported by procure train; use load_in_4bit (QLoRA)")
    attn = model_args.attn_implementation or "sdpa"
    peft_config = None
    if model_args.use_peft or model_args.load_in_4bit:
        if model_args.load_in_4bit and not model_args.use_peft:
            raise UserError("load_in_4bit trains LoRA adapters only: set use_peft: true in the recipe")
        peft_config = default_lora_config(
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=model_args.lora_target_modules or "all-linear",
            modules_to_save=model_args.lora_modules_to_save,
            use_rslora=model_args.use_rslora,
            use_dora=model_args.use_dora,
        )
    if model_args.load_in_4bit:
        compute_dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "bfloat16"
        model = load_model_4bit(
            model_args.model_name_or_path,
            compute_dtype=compute_dtype,
            attn_implementation=attn,
            gradient_checkpointing=bool(training_args.gradient_checkpointing),
            quantization_config=get_quantization_config(
                compute_dtype, model_args.bnb_4bit_quant_type, model_args.use_bnb_nested_quant
            ),
            revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
        return model, peft_config
    init_kwargs = {"revision": model_args.model_revision, "attn_implementation": attn, "dtype": model_args.dtype}
    training_args.model_init_kwargs = {**init_kwargs, **(training_args.model_init_kwargs or {})}
    return model_args.model_name_or_path, peft_config


def run_recipe(script_args, training_args, model_args, callbacks=None):
    """Build the trainer from parsed recipe arguments (and ``callbacks``, TrainerCallbacks), train, save; returns
    the trainer."""
    from transformers import AutoTokenizer

    from procure_trl.training.trainer import ConceptAwareSFTTrainer

    check_output_dir(training_args)  # before anything loads
    check_some_steps(training_args)  # the settings alone, before anything loads
    train_dataset, eval_dataset = load_training_datasets(script_args)
    check_dataset_columns(train_dataset, training_args, "train")
    if eval_dataset is not None and training_args.eval_strategy != "no":
        check_dataset_columns(eval_dataset, training_args, "eval")
    if not model_args.model_name_or_path:
        raise UserError("the recipe sets no model_name_or_path")
    from procure_trl.hub import require_local_or_hub

    require_local_or_hub(model_args.model_name_or_path, "model", "model_name_or_path")
    try:  # the tokenizer first: it is small, and a wrong model path fails here before any weights load
        tokenizer = AutoTokenizer.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    except OSError as err:
        raise UserError(
            f"model_name_or_path {model_args.model_name_or_path!r} cannot be loaded ({err}); give a local directory "
            "with the model and its tokenizer, or a Hub id (cached, when HF_HUB_OFFLINE=1)"
        ) from err
    model, peft_config = load_model_for_recipe(model_args, training_args)
    from procure_trl.counterfactual_dataset import card_prompt_format

    origin = {
        "dataset": script_args.dataset_name,
        "config": script_args.dataset_config,
        "split": script_args.dataset_train_split,
        "prompt_format": card_prompt_format(script_args.dataset_name),  # None: the trainer reads it off the rows
    }
    try:
        trainer = ConceptAwareSFTTrainer(
            model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset if training_args.eval_strategy != "no" else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            train_dataset_origin=origin,
            callbacks=callbacks,
        )
    except ValueError as err:  # the data or the settings do not fit (e.g. ids made by another tokenizer)
        raise UserError(" ".join(str(err).split())) from err
    check_some_steps(training_args, trainer.train_dataset)  # the rows left after the trainer's truncation
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer

