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


def test_procure_train_reports_a_missing_dataset(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": "x", "output_dir": str(tmp_path / "o"), "use_cpu": True}))
    with pytest.raises(ValueError, match="no dataset_name"):
        main(["train", "--config", str(path)])


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
