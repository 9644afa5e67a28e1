"""The concept-aware SDPA attention function: same outputs as sdpa, exact attention mass, checkpointing."""

from __future__ import annotations

import pytest
import torch

from procure_trl.testing_utils import build_tiny_llama
from procure_trl.training.attention import (
    CONCEPT_ATTENTION_NAME,
    ConceptAttentionProbe,
    disable_concept_attention,
    enable_concept_attention,
)


def _left_padded_batch(vocab_size: int, pad_id: int):
    torch.manual_seed(1)
    ids = torch.randint(5, vocab_size, (3, 14))
    attention_mask = torch.ones_like(ids)
    attention_mask[0, :4] = 0  # left padding
    attention_mask[2, :1] = 0
    ids[attention_mask == 0] = pad_id
    delta = torch.zeros_like(ids, dtype=torch.float32)
    delta[0, 6:8] = 1
    delta[1, 3] = 1
    delta[1, 10:12] = 1
    return ids, attention_mask, delta


def _eager_mass(model, ids, attention_mask, delta):
    """Reference: materialised attention probabilities from eager attention."""
    model.config._attn_implementation = "eager"
    try:
        out = model(input_ids=ids, attention_mask=attention_mask, output_attentions=True)
    finally:
        model.config._attn_implementation = "sdpa"
    per_layer = [(probs * delta[:, None, None, :]).sum(-1).mean(1) for probs in out.attentions]  # (B, L) each
    return out.logits, per_layer


def test_outputs_equal_plain_sdpa_with_left_padding(tiny_tokenizer):
    model = build_tiny_llama(tiny_tokenizer).eval()
    ids, attention_mask, delta = _left_padded_batch(len(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=attention_mask).logits
        enable_concept_attention(model)
        assert model.config._attn_implementation == CONCEPT_ATTENTION_NAME
        plain = model(input_ids=ids, attention_mask=attention_mask).logits
        probed = model(
            input_ids=ids, attention_mask=attention_mask, concept_probe=ConceptAttentionProbe(delta, [0, 1])
        ).logits
    real = attention_mask.bool()
    torch.testing.assert_close(plain[real], reference[real], rtol=0, atol=0)
    torch.testing.assert_close(probed[real], reference[real], rtol=1e-5, atol=1e-5)


def test_attention_mass_equals_materialised_probabilities(tiny_tokenizer):
    model = build_tiny_llama(tiny_tokenizer).eval()
    ids, attention_mask, delta = _left_padded_batch(len(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        _, per_layer = _eager_mass(model, ids, attention_mask, delta)
        enable_concept_attention(model)
        probe = ConceptAttentionProbe(delta, [0, 1])
        model(input_ids=ids, attention_mask=attention_mask, concept_probe=probe)
    real = attention_mask.bool()
    expected = torch.stack(per_layer).mean(0)
    torch.testing.assert_close(probe.attention_mass()[real], expected[real], rtol=1e-5, atol=1e-6)
    assert probe.attention_mass()[real].max() > 0.05  # the test data does put mass on perturbed keys

    # one layer only: only that layer is computed and recorded
    with torch.no_grad():
        top = ConceptAttentionProbe(delta, [1])
        model(input_ids=ids, attention_mask=attention_mask, concept_probe=top)
    assert top.recorded_layers == [1]
    torch.testing.assert_close(top.attention_mass()[real], per_layer[1][real], rtol=1e-5, atol=1e-6)


def test_extra_key_masks_are_measured_in_the_same_forward(tiny_tokenizer):
    """Each extra key mask gets its own exact mass; nine masks (head_dim 16) need a wider padding than one."""
    model = build_tiny_llama(tiny_tokenizer).eval()
    ids, attention_mask, delta = _left_padded_batch(len(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    extra = [(torch.rand(delta.shape) < 0.3).float() * attention_mask for _ in range(8)]
    with torch.no_grad():
        expected = [_eager_mass(model, ids, attention_mask, mask)[1] for mask in (delta, *extra)]
        enable_concept_attention(model)
        probe = ConceptAttentionProbe(delta, [0, 1], extra_masks=extra)
        model(input_ids=ids, attention_mask=attention_mask, concept_probe=probe)
    real = attention_mask.bool()
    for i, per_layer in enumerate(expected):
        for layer, mass in probe.layer_mass(i).items():
            torch.testing.assert_close(mass[real], per_layer[layer][real], rtol=1e-5, atol=1e-6, msg=f"mask {i}")
    with pytest.raises(ValueError, match="extra_masks must have perturbation_mask's shape"):
        ConceptAttentionProbe(delta, [0], extra_masks=[delta[:, 1:]])


def test_non_reentrant_checkpointing_keeps_the_gradient(tiny_tokenizer):
    ids, attention_mask, delta = _left_padded_batch(len(tiny_tokenizer), tiny_tokenizer.pad_token_id)

    def grads(checkpointing: bool):
        model = build_tiny_llama(tiny_tokenizer).train()
        enable_concept_attention(model)
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        probe = ConceptAttentionProbe(delta, [0, 1])
        out = model(input_ids=ids, attention_mask=attention_mask, concept_probe=probe, use_cache=False)
        loss = -torch.log(1e-6 + probe.attention_mass())[attention_mask.bool()].mean() + out.logits.mean()
        first = {layer: id(probe._mass[layer]) for layer in (0, 1)}
        loss.backward()
        # the layers recomputed during backward must not replace (and keep alive) the values the loss used
        assert {layer: id(probe._mass[layer]) for layer in (0, 1)} == first
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = grads(False)
    loss_b, grads_b = grads(True)
    torch.testing.assert_close(loss_a, loss_b)
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert grads_a[q_proj].abs().sum() > 0
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7, msg=name)


def test_missing_layers_and_unsupported_implementations_are_reported(tiny_tokenizer):
    model = build_tiny_llama(tiny_tokenizer, attn_implementation="eager")
    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        enable_concept_attention(model)
    # a model left on plain sdpa never fills the probe: the error says what to do
    plain = build_tiny_llama(tiny_tokenizer)
    probe = ConceptAttentionProbe(torch.zeros(1, 5), [0, 1])
    with torch.no_grad():
        plain(input_ids=torch.randint(5, 50, (1, 5)), concept_probe=probe)
    with pytest.raises(RuntimeError, match=r"layers \[0, 1\]"):
        probe.attention_mass()
    enable_concept_attention(plain)
    disable_concept_attention(plain)
    assert plain.config._attn_implementation == "sdpa"
