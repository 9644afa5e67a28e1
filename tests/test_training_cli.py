"""``procure train --config recipe.yaml`` end to end: tiny Llama on disk, 4-bit + LoRA, JSONL dataset."""

from __future__ import annotations

import json

import pytest
import yaml
from training_ddp_worker import make_rows

from procure_trl.cli import main
from procure_trl.testing_utils import build_tiny_llama


def test_procure_train_from_recipe(tmp_path, tiny_tokenizer):
    model_dir = tmp_path / "tiny"
    build_tiny_llama(tiny_tokenizer).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    recipe = {
        "dataset_name": str(data),
        "model_name_or_path": str(model_dir),
        "load_in_4bit": True,
        "use_peft": True,
        "use_bnb_nested_quant": True,
        "dtype": "float32",
        "lora_r": 4,
        "lora_alpha": 8,
        "concept_loss_weight": 0.1,
        "attention_layers": "all",
        "output_dir": str(tmp_path / "out"),
        "max_steps": 5,  # overridden below
        "per_device_train_batch_size": 4,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path), "--", "--max_steps", "2", "--attention_layers", "1"]) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
    state = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert state["r"] == 4


def test_procure_train_reports_a_missing_dataset(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": "x", "output_dir": str(tmp_path / "o"), "use_cpu": True}))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("procure train: error:") and "no dataset_name" in err and err.count("\n") == 1


@pytest.mark.slow  # imports TRL (about 15 s here)
def test_a_dataset_without_the_columns_fails_before_the_model_is_loaded(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"text": "def f():\n    return 1\n"}) + "\n")
    path = tmp_path / "recipe.yaml"
    # the model path does not exist: reaching the model loader would fail with a different error
    path.write_text(yaml.safe_dump({"dataset_name": str(data), "model_name_or_path": str(tmp_path / "no-model"),
                                    "output_dir": str(tmp_path / "o"), "use_cpu": True, "report_to": "none"}))
    assert main(["train", "--config", str(path)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # lines before it: datasets' progress bar
    assert last.startswith("procure train: error: the train dataset lacks the column(s) "
                           "['prompt', 'completion', 'changed_spans'] (columns: ['text'])")


_TYPO_RUN = """
import sys
from procure_trl.cli import main
rc = main(sys.argv[1:])
print(rc, sorted(m for m in ("torch", "transformers", "trl") if m in sys.modules))
"""


@pytest.mark.parametrize("typo, expected", [
    (["--config", "RECIPE"], "recipe RECIPE: unknown field 'concept_los_weight' (did you mean 'concept_loss_weight'?)"),
    (
        ["--config", "OK", "--", "--lerning_rate", "1e-4"],
        "unknown recipe option --lerning_rate (did you mean 'learning_rate'?)"
    ),
])
def test_recipe_typos_are_refused_with_a_suggestion_before_importing_trl(tmp_path, typo, expected):
    import subprocess
    import sys

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset_name: d.jsonl\nmodel_name_or_path: m\nconcept_los_weight: 0.2\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text("dataset_name: d.jsonl\nmodel_name_or_path: m\n")
    argv = [str(recipe) if a == "RECIPE" else str(ok) if a == "OK" else a for a in typo]
    out = subprocess.run([sys.executable, "-c", _TYPO_RUN, "train", *argv], capture_output=True, text=True)
    assert out.stdout.strip() == "2 []", out.stderr  # exit 2, and neither torch nor TRL was imported
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert expected.replace("RECIPE", str(recipe)) in out.stderr


def test_show_options_lists_every_recipe_field_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys; from procure_trl.cli import main; main(['train', '--show-options']); "
            "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for expected in ("--concept_loss_weight", "(default: 0.1)", "--lora_r", "--learning_rate", "--dataset_name",
                     "--gradient_checkpointing_kwargs", "model (TRL ModelConfig)"):
        assert expected in out, expected
    assert out.rstrip().endswith("[]")


def test_example_recipe_parses():
    from pathlib import Path

    from procure_trl.training.recipe import recipe_parser

    recipe = Path(__file__).resolve().parents[1] / "examples" / "procure_qlora.yaml"
    script, training, model = recipe_parser().parse_args_and_config(
        ["--config", str(recipe), "--use_cpu", "true", "--bf16", "false"]  # the recipe targets a GPU
    )
    assert model.load_in_4bit and model.use_peft and model.use_bnb_nested_quant
    assert training.concept_loss_weight == 0.1 and training.attention_layers is None
    assert training.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert script.dataset_config == "all"


@pytest.mark.slow  # imports TRL and transformers
def test_recipe_fields_read_from_source_match_the_imported_dataclasses():
    from procure_trl.training import recipe_fields as rf

    from_source = {(f.group, f.name): f for f in rf._fields_from_source()}
    imported = {(f.group, f.name): f for f in rf._fields_from_import()}
    assert from_source.keys() == imported.keys()
    for key, field in imported.items():
        assert from_source[key].owner == field.owner, key
        # a default computed at import time (e.g. from the torch version) is shown as its candidates, "a or b"
        assert field.default == from_source[key].default or field.default in from_source[key].default.split(" or ")
        assert from_source[key].help == field.help, key


@pytest.mark.slow  # imports TRL
def test_a_bad_override_value_is_one_line(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"dataset_name": "d.jsonl", "model_name_or_path": "m", "use_cpu": True}))
    assert main(["train", "--config", str(path), "--max_steps", "many"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("procure train: error: argument --max_steps/--max-steps: invalid int value: 'many'")
    assert err.count("\n") == 1


@pytest.mark.slow  # imports TRL
def test_a_model_path_that_does_not_exist_is_one_line(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"dataset_name": str(data), "model_name_or_path": str(tmp_path / "no-model"),
                                    "output_dir": str(tmp_path / "o"), "use_cpu": True, "report_to": "none"}))
    assert main(["train", "--config", str(path)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"procure train: error: model_name_or_path: no such folder: {tmp_path / 'no-model'}"


#: ModelConfig fields of --show-options that are not LoRA or quantization settings
_NOT_ADAPTER_OR_QUANTIZATION = {"model_name_or_path", "model_revision", "dtype", "attn_implementation", "use_peft",
                                "load_in_8bit", "load_in_4bit"}
#: recipe field -> (the config it must reach, its attribute there, a value that is not the default)
_REACHES = {
    "lora_r": ("lora", "r", 7),
    "lora_alpha": ("lora", "lora_alpha", 11),
    "lora_dropout": ("lora", "lora_dropout", 0.125),
    "lora_target_modules": ("lora", "target_modules", ["q_proj", "v_proj"]),
    "lora_target_parameters": ("lora", "target_parameters", ["mlp.experts.down_proj"]),
    "lora_modules_to_save": ("lora", "modules_to_save", ["embed_tokens"]),
    "lora_task_type": ("lora", "task_type", "SEQ_CLS"),
    "use_rslora": ("lora", "use_rslora", True),
    "use_dora": ("lora", "use_dora", True),
    "bnb_4bit_quant_type": ("bnb", "bnb_4bit_quant_type", "fp4"),
    "use_bnb_nested_quant": ("bnb", "bnb_4bit_use_double_quant", True),
    "bnb_4bit_quant_storage": ("bnb", "bnb_4bit_quant_storage", "bfloat16"),
}


@pytest.mark.slow  # imports TRL and bitsandbytes (about 9 s here)
def test_every_lora_and_quantization_field_of_show_options_reaches_the_configs(tmp_path):
    import re

    import torch

    from procure_trl.commands.train import show_options
    from procure_trl.training.recipe import parse_recipe, recipe_peft_config, recipe_quantization_config

    text = show_options()
    model_block = text[text.index("model (TRL ModelConfig)"):]
    listed = set(re.findall(r"^  --(\w+)", model_block, flags=re.M)) - _NOT_ADAPTER_OR_QUANTIZATION
    assert listed == set(_REACHES), "a LoRA/quantization field without a check here (or one --show-options lost)"
    recipe = {"model_name_or_path": "m", "use_peft": True, "load_in_4bit": True, "dtype": "float16",
              "bf16": False, "output_dir": str(tmp_path),
              **{name: value for name, (_, _, value) in _REACHES.items() if name != "lora_r"}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    _, _, model_args = parse_recipe(str(path), ["--lora-r", "7"])  # an override, in the dashed spelling
    built = {"lora": recipe_peft_config(model_args), "bnb": recipe_quantization_config(model_args)}
    for name, (config, attribute, value) in _REACHES.items():
        got = getattr(built[config], attribute)
        if attribute == "bnb_4bit_quant_storage":
            value = getattr(torch, value)
        elif isinstance(value, list):
            got = sorted(got)
        assert got == value, f"{name}={value!r} reached {type(built[config]).__name__}.{attribute} as {got!r}"
    assert built["bnb"].load_in_4bit and built["bnb"].bnb_4bit_compute_dtype == torch.float16


@pytest.mark.slow  # imports TRL
def test_recipe_defaults_give_all_linear_lora_and_bfloat16_compute():
    from trl import ModelConfig

    from procure_trl.training.recipe import recipe_peft_config, recipe_quantization_config

    assert recipe_peft_config(ModelConfig(model_name_or_path="m")) is None
    lora = recipe_peft_config(ModelConfig(model_name_or_path="m", use_peft=True))
    assert lora.target_modules == "all-linear" and lora.task_type == "CAUSAL_LM" and lora.bias == "none"
    assert recipe_quantization_config(ModelConfig(model_name_or_path="m", use_peft=True)) is None
    import torch

    bnb = recipe_quantization_config(ModelConfig(model_name_or_path="m", use_peft=True, load_in_4bit=True,
                                                 dtype="auto"))
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16 and bnb.bnb_4bit_quant_type == "nf4"
