"""CUDA checks (skipped without a GPU): the attention mass from the fused kernels, and QLoRA end to end."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from training_ddp_worker import make_rows

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from procure_trl.testing_utils import build_tiny_llama  # noqa: E402
from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer  # noqa: E402
from procure_trl.training.attention import ConceptAttentionProbe, enable_concept_attention  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mass_and_outputs_on_cuda(tiny_tokenizer, dtype):
    model = build_tiny_llama(
        tiny_tokenizer, hidden_size=128, num_attention_heads=2, num_key_value_heads=2
    ).to("cuda", dtype).eval()
    torch.manual_seed(0)
    ids = torch.randint(5, len(tiny_tokenizer), (2, 256), device="cuda")
    delta = (torch.rand(2, 256, device="cuda") < 0.1).float()
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        model.config._attn_implementation = "eager"
        eager = model(input_ids=ids, output_attentions=True)
        expected = torch.stack(
            [(a.float() * delta[:, None, None, :]).sum(-1).mean(1) for a in eager.attentions]
        ).mean(0)
        model.config._attn_implementation = "sdpa"
        enable_concept_attention(model)
        probe = ConceptAttentionProbe(delta, [0, 1])
        probed = model(input_ids=ids, concept_probe=probe).logits
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(probed.float(), reference.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(probe.attention_mass(), expected, rtol=tol, atol=tol)


def test_qlora_on_cuda(tmp_path, tiny_tokenizer):
    from procure_trl.training.qlora import default_lora_config, load_model_4bit

    path = tmp_path / "tiny"
    build_tiny_llama(tiny_tokenizer, hidden_size=128, intermediate_size=256).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    model = load_model_4bit(str(path))  # nf4, double quantization, bf16 compute, on this GPU
    assert next(p for p in model.parameters()).device.type == "cuda"
    args = ConceptAwareSFTConfig(
        output_dir=str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=4, learning_rate=5e-2,
        lr_scheduler_type="constant", logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, bf16=True,
    )
    trainer = ConceptAwareSFTTrainer(
        model, args=args, train_dataset=Dataset.from_list(make_rows()[:4]), processing_class=tiny_tokenizer,
        peft_config=default_lora_config(r=8, lora_alpha=16, lora_dropout=0.0),
    )
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    losses = [log["loss"] for log in logs]
    print("cuda qlora losses", losses, "loss_att", [log.get("loss_att") for log in logs])
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    trainer.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
