"""``procure evaluate --load-in-4bit``: the base model is loaded with QLoRA's 4-bit quantization, the adapter on
top; its completions are cached apart from the unquantized model's."""

from __future__ import annotations

import pytest

from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.model_loading import load_model_and_tokenizer
from procure_trl.testing_utils import save_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny") / "model"))


def test_flag_and_field_exist(capsys):
    from procure_trl.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--load-in-4bit" in capsys.readouterr().out
    assert EvaluationConfig(model="m").load_in_4bit is False


def test_base_model_is_loaded_in_4bit(tiny_model):
    pytest.importorskip("bitsandbytes")
    import torch

    plain, _ = load_model_and_tokenizer(tiny_model, dtype="float32", device="cpu")
    model, _ = load_model_and_tokenizer(tiny_model, dtype="float32", device="cpu", load_in_4bit=True)
    quantization = model.config.quantization_config
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant
    linear = model.model.layers[0].self_attn.q_proj
    assert type(linear).__name__ == "Linear4bit"
    assert type(plain.model.layers[0].self_attn.q_proj).__name__ == "Linear"
    ids = torch.tensor([[1, 5, 9, 20]])
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all() and logits.shape == plain(ids).logits.shape


def test_4bit_completions_are_cached_apart_and_vllm_is_refused(tiny_model):
    plain = EvaluationConfig(model=tiny_model).sampling_fingerprint()
    quantized = EvaluationConfig(model=tiny_model, load_in_4bit=True).sampling_fingerprint()
    assert plain != quantized
    with pytest.raises(ValueError, match="load_in_4bit"):
        EvaluationConfig(model=tiny_model, load_in_4bit=True, backend="vllm")
