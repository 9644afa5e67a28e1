"""QLoRA end to end on CPU: a tiny Llama saved to disk, loaded in 4-bit, trained with LoRA adapters."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from training_ddp_worker import make_rows

from procure_trl.testing_utils import build_tiny_llama
from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer
from procure_trl.training.qlora import default_lora_config, default_quantization_config, load_model_4bit


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny-llama"
    build_tiny_llama(tiny_tokenizer, hidden_size=64, intermediate_size=128).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def test_quantization_config_is_qlora():
    config = default_quantization_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="quant_type"):
        default_quantization_config(quant_type="int3")


@pytest.mark.slow
def test_qlora_trains_saves_and_reloads(tmp_path, tiny_checkpoint, tiny_tokenizer):
    import bitsandbytes as bnb
    from peft import PeftModel

    model = load_model_4bit(str(tiny_checkpoint), compute_dtype="float32")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    rows = make_rows()[:2]  # one original + its counterfactual, repeated every step
    args = ConceptAwareSFTConfig(
        output_dir=str(tmp_path / "out"), max_steps=6, per_device_train_batch_size=2, learning_rate=5e-2,
        lr_scheduler_type="constant", logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
        disable_tqdm=True, seed=0,
    )
    trainer = ConceptAwareSFTTrainer(
        model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer,
        peft_config=default_lora_config(r=8, lora_alpha=16, lora_dropout=0.0),
    )
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}

    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.05, losses
    assert any("loss_att" in log for log in trainer.state.log_history)
    for n, p in trainer.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p.detach(), frozen_before[n]), f"{n} changed but only LoRA weights may train"

    adapter_dir = tmp_path / "adapter"
    trainer.save_model(str(adapter_dir))
    assert (adapter_dir / "adapter_model.safetensors").exists()
    assert not (adapter_dir / "model.safetensors").exists()

    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.eval()
    with torch.no_grad():
        trained = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    base = load_model_4bit(str(tiny_checkpoint), compute_dtype="float32", gradient_checkpointing=False)
    reloaded = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    with torch.no_grad():
        again = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    # the adapter was kept in bf16 during training and comes back fp32: agreement to bf16 precision
    torch.testing.assert_close(again[real], trained[real], rtol=2e-2, atol=2e-2)
    with reloaded.disable_adapter(), torch.no_grad():
        without = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert (without[real] - trained[real]).abs().max() > 1e-2  # the adapter matters
