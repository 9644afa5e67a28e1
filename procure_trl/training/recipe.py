"""Run a training recipe: the library side of ``procure train --config recipe.yaml``.

A recipe is a YAML file (read by :func:`procure_trl.configs.load_yaml_config`, as experiment configs are) parsed by
TRL's ``TrlParser`` into three dataclasses: TRL's ``ScriptArguments``
(the dataset), :class:`~procure_trl.training.ConceptAwareSFTConfig` (training and the ProCURE loss)
and TRL's ``ModelConfig`` (model, 4-bit loading, LoRA). Command-line flags override the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def _name_recipe_field(message: str, source: str, overrides: list[str]) -> str:
    """argparse's ``argument --lr/--l-r: invalid float value: 'fast'`` as ``recipe r.yaml: field lr: ...`` when the
    value came from the recipe (its values reach argparse as defaults), else unchanged (a flag names itself)."""
    import re

    match = re.match(r"argument --([\w-]+)(?:/--[\w-]+)*: (.*)", message)
    if not match:
        return message
    name = match.group(1).replace("-", "_")
    given = {token[2:].split("=", 1)[0].replace("-", "_") for token in overrides if token.startswith("--")}
    return message if name in given else f"{source}: field {name}: {match.group(2)}"


def check_recipe_fields(recipe: Mapping[str, Any], source: str) -> None:
    """Refuse a recipe key that is no recipe field, naming ``source`` and the closest known field.

    Reads the fields from the installed sources (:mod:`procure_trl.training.recipe_fields`): no TRL import.
    """
    from procure_trl.errors import did_you_mean
    from procure_trl.training.recipe_fields import recipe_field_names

    known = recipe_field_names()
    for name in recipe:
        if name != "env" and name not in known:  # `env:` sets environment variables (as TRL's TrlParser does)
            raise UserError(f"{source}: unknown field {name!r}{did_you_mean(str(name), known)}; "
                            "`procure train --show-options` lists every field")


def parse_recipe(recipe: str | Mapping[str, Any] | None, overrides: list[str], source: str | None = None):
    """``(script_args, training_args, model_args)`` from a recipe and ``--name value`` overrides (either spelling).

    Args:
        recipe: a YAML file (read by :func:`procure_trl.configs.load_yaml_config`), the recipe's ``field: value``
            mapping itself, or ``None`` (overrides only).
        overrides: command-line flags that replace the recipe's values.
        source: how messages name the recipe (default: ``recipe PATH``).

    A key that is no field, or a value the configs refuse (``concept_loss_weight: -1``), is a :class:`UserError`
    naming it. ``env:`` sets environment variables, as in TRL's ``TrlParser``.
    """
    from procure_trl.configs import load_yaml_config

    if isinstance(recipe, str):
        source = source or f"recipe {recipe}"
        values = load_yaml_config("recipes", recipe)
    else:
        source = source or "recipe (command line)"
        values = dict(recipe or {})
    check_recipe_fields(values, source)
    env = values.pop("env", None) or {}
    if not isinstance(env, Mapping):
        raise UserError(f"{source}: env must be a mapping of NAME: value lines")
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    parser = recipe_parser()

    def one_line(message: str):  # argparse would print the usage of all the recipe fields first
        raise _FieldError(f"{_name_recipe_field(message, source, overrides)}; `procure train --show-options` "
                          "lists every field and its type")

    parser.error = one_line
    parser.set_defaults_with_config(**values)  # every key is a field (checked above)
    try:
        return parser.parse_args_into_dataclasses(args=list(overrides))
    except _FieldError:
        raise  # names its source already
    except ValueError as err:  # the configs' own checks (UserError included): say which recipe
        raise UserError(f"{source}: {' '.join(str(err).split())}") from err


class _FieldError(UserError):
    """A recipe value argparse refused, already named with its recipe and field."""


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

    from procure_trl.dataset.rows import load_dataset_dict, select_split

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


def recipe_peft_config(model_args):
    """The ``LoraConfig`` of a recipe's ``ModelConfig`` (``None`` without ``use_peft``), built by TRL's
    ``get_peft_config``, so every ``lora_*`` field ``procure train --show-options`` lists reaches it. One default
    differs from TRL's: without ``lora_target_modules`` the adapters go on every linear layer (``all-linear``)."""
    import dataclasses

    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    return get_peft_config(dataclasses.replace(model_args, lora_target_modules=model_args.lora_target_modules
                                                or "all-linear"))


def recipe_compute_dtype(model_args) -> str:
    """The dtype 4-bit layers compute in: the recipe's ``dtype``, bfloat16 for ``auto`` or none (as QLoRA)."""
    return model_args.dtype if model_args.dtype not in (None, "auto") else "bfloat16"


def recipe_quantization_config(model_args):
    """The ``BitsAndBytesConfig`` of a recipe's ``ModelConfig`` (``None`` without ``load_in_4bit``), built by TRL's
    ``get_quantization_config`` from every ``bnb_*`` field, computing in :func:`recipe_compute_dtype`."""
    import dataclasses

    from trl import get_quantization_config

    if not model_args.load_in_4bit:
        return None
    return get_quantization_config(dataclasses.replace(model_args, dtype=recipe_compute_dtype(model_args)))


def load_model_for_recipe(model_args, training_args):
    """``(model, peft_config)``: a 4-bit model prepared for k-bit training when ``load_in_4bit``,
    otherwise the model id (the trainer loads it with ``model_init_kwargs``)."""
    from procure_trl.training.qlora import load_model_4bit

    if not model_args.model_name_or_path:
        raise UserError("the recipe sets no model_name_or_path")
    if model_args.load_in_8bit:
        raise UserError("load_in_8bit is not supported by procure train; use load_in_4bit (QLoRA)")
    if model_args.load_in_4bit and not model_args.use_peft:
        raise UserError("load_in_4bit trains LoRA adapters only: set use_peft: true in the recipe")
    attn = model_args.attn_implementation or "sdpa"
    peft_config = recipe_peft_config(model_args)
    if model_args.load_in_4bit:
        model = load_model_4bit(
            model_args.model_name_or_path,
            compute_dtype=recipe_compute_dtype(model_args),
            attn_implementation=attn,
            gradient_checkpointing=bool(training_args.gradient_checkpointing),
            quantization_config=recipe_quantization_config(model_args),
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
    from procure_trl.dataset.rows import card_prompt_format

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

