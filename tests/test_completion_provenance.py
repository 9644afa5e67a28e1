"""Completions belong to the model that wrote them: the cache key fingerprints the model's files, and every
sample has a seed of its own, so a resumed evaluation writes what an uninterrupted one writes."""

from __future__ import annotations

import json
import os

import pytest

from procure_trl import pretrained
from procure_trl.harness.config import EvaluationConfig
from procure_trl.harness.sampling import (
    GenerationRequest,
    SeededSampler,
    TransformersBackend,
    request_seed,
)
from procure_trl.pretrained import folder_fingerprint, model_fingerprint, resolve_model_name
from procure_trl.provenance import check_adapter_base


def _model_folder(path, weights: bytes = b"w" * 64):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"hidden_size": 8}')
    (path / "model.safetensors").write_bytes(weights)
    return path


# ------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_follows_the_files_not_the_folder_name(tmp_path):
    a = _model_folder(tmp_path / "a")
    before = model_fingerprint(str(a))
    assert model_fingerprint(str(_model_folder(tmp_path / "copy"))) == before  # the same files elsewhere
    (a / "README.md").write_text("a model card")  # not loaded: no new model
    (a / "checkpoint-5").mkdir()
    (a / "checkpoint-5" / "model.safetensors").write_bytes(b"other")
    assert model_fingerprint(str(a)) == before
    (a / "config.json").write_text('{"hidden_size": 16}')
    assert model_fingerprint(str(a)) != before
    (a / "config.json").write_text('{"hidden_size": 8}')
    (a / "model.safetensors").write_bytes(b"v" * 64)  # retrained: same size, other weights
    assert model_fingerprint(str(a)) != before
    (a / "model.safetensors").write_bytes(b"w" * 64)
    assert model_fingerprint(str(a)) == before  # the same files again: the same model


def test_large_weights_are_fingerprinted_by_size_mtime_and_their_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WHOLE_FILE_LIMIT", 1024)
    monkeypatch.setattr(pretrained, "EDGE_BYTES", 256)
    weights = bytearray(os.urandom(4096))
    folder = _model_folder(tmp_path / "m", bytes(weights))
    path = folder / "model.safetensors"
    stamp = (1_700_000_000_000_000_000, 1_700_000_000_000_000_000)
    os.utime(path, ns=stamp)
    entry = folder_fingerprint(folder)["model.safetensors"]
    assert entry["size"] == 4096 and entry["mtime_ns"] == stamp[1]

    def changed(offset: int) -> dict:
        data = bytearray(weights)
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=stamp)  # the same modification time: only the content can tell
        return folder_fingerprint(folder)["model.safetensors"]

    assert changed(10) != entry  # in the first EDGE_BYTES
    assert changed(4000) != entry  # in the last EDGE_BYTES
    # The middle is not read (that is what keeps multi-GB weights fast): the modification time covers it.
    assert changed(2000) == entry
    os.utime(path, ns=(stamp[0], stamp[1] + 1))
    assert folder_fingerprint(folder)["model.safetensors"] != entry


def test_a_hub_id_keeps_its_id_and_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--me--coder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    (repo / "snapshots" / sha / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_fingerprint("me/coder") == {"hub_id": "me/coder", "revision": sha}
    assert model_fingerprint("me/not-cached") == {"hub_id": "me/not-cached", "revision": None}
    assert model_fingerprint(None) is None


def test_the_cache_key_changes_with_the_model_files_and_the_seed(tmp_path):
    model = _model_folder(tmp_path / "model")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(b"a" * 32)
    config = EvaluationConfig(model=str(model), adapter=str(adapter), n=1, k=(1,))
    key = config.sampling_fingerprint()
    assert EvaluationConfig(model=str(model), adapter=str(adapter) + "/", n=1, k=(1,)).sampling_fingerprint() == key
    (adapter / "adapter_model.safetensors").write_bytes(b"b" * 32)  # retrained in place
    assert config.sampling_fingerprint() != key
    (adapter / "adapter_model.safetensors").write_bytes(b"a" * 32)
    assert config.sampling_fingerprint() == key
    assert EvaluationConfig(model=str(model), adapter=str(adapter), n=1, k=(1,), seed=1).sampling_fingerprint() != key
    greedy = [EvaluationConfig(model=str(model), n=1, k=(1,), temperature=0, seed=s).sampling_fingerprint()
              for s in (0, 1)]
    assert greedy[0] == greedy[1]  # greedy decoding draws nothing


# ----------------------------------------------------------------------------------------------- paths


def test_an_absolute_and_a_relative_path_to_the_base_are_one_model(tmp_path, monkeypatch):
    base = _model_folder(tmp_path / "outputs" / "tiny-model")
    adapter = tmp_path / "outputs" / "adapter"
    adapter.mkdir()
    # Trained from tmp_path with a relative --model: PEFT records the path as given.
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "outputs/tiny-model"}))
    monkeypatch.chdir(tmp_path)
    check_adapter_base(str(adapter), str(base))
    check_adapter_base("outputs/adapter", "./outputs/tiny-model/")
    monkeypatch.chdir(tmp_path / "outputs")  # evaluated from elsewhere
    check_adapter_base(str(adapter), str(base))
    check_adapter_base("adapter", "tiny-model")
    monkeypatch.setenv("HOME", str(tmp_path))
    check_adapter_base(str(adapter), "~/outputs/tiny-model")
    assert resolve_model_name("~/outputs/tiny-model") == os.path.realpath(base)
    assert resolve_model_name("Qwen/Qwen2.5-Coder-1.5B") == "Qwen/Qwen2.5-Coder-1.5B"
    other = _model_folder(tmp_path / "other")
    with pytest.raises(ValueError, match="was trained on base model outputs/tiny-model"):
        check_adapter_base(str(adapter), str(other))


# -------------------------------------------------------------------------------------------- sampling


def test_request_seeds_depend_on_seed_prompt_and_index_only():
    a, b = GenerationRequest("def f():\n", 0), GenerationRequest("def f():\n", 1)
    assert request_seed(0, a) == request_seed(0, GenerationRequest("def f():\n", 0))
    assert len({request_seed(0, a), request_seed(0, b), request_seed(1, a),
                request_seed(0, GenerationRequest("def g():\n", 0))}) == 4


def test_seeded_sampler_draws_from_the_tempered_nucleus():
    """Simulation: the frequencies of many seeded draws match the softmax at the temperature, cut at top_p."""
    import torch

    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    temperature, top_p, draws = 0.7, 0.95, 10000
    probs = torch.softmax(logits / temperature, dim=-1)
    mass_before = probs.cumsum(-1) - probs
    expected = torch.where(mass_before < top_p, probs, torch.zeros_like(probs))
    expected = expected / expected.sum()
    assert expected[2] > 0 and expected[3] == 0  # the nucleus drops the two least likely tokens here
    sampler = SeededSampler(range(draws), temperature, top_p)
    scores = sampler(None, logits.repeat(draws, 1))
    chosen = scores.argmax(-1)
    assert torch.isinf(scores).sum(-1).eq(len(logits) - 1).all()  # one token left per row
    frequencies = torch.bincount(chosen, minlength=len(logits)).double() / draws
    assert frequencies[3] == 0 and frequencies[4] == 0
    # 4 standard errors of a proportion at 10,000 draws are at most 0.02.
    assert torch.allclose(frequencies, expected.double(), atol=0.02)
    again = SeededSampler(range(draws), temperature, top_p)(None, logits.repeat(draws, 1)).argmax(-1)
    assert torch.equal(again, chosen)  # the same seeds, the same draws


@pytest.mark.slow
def test_a_sample_does_not_depend_on_its_batch(tiny_tokenizer, tiny_llama):
    config = EvaluationConfig(model="tiny", n=3, k=(1,), temperature=0.8, max_new_tokens=10, stop_sequences=())
    backend = TransformersBackend(tiny_llama, tiny_tokenizer, config)
    prompts = ["def add(a, b):\n", "for i in range(10):\n    total = total + i\n"]
    requests = [GenerationRequest(p, i) for p in prompts for i in range(3)]
    together = backend.generate(requests)
    assert together == [backend.generate([r])[0] for r in requests]
    assert together == backend.generate(requests[::-1])[::-1]
    assert len(set(together[:3])) > 1  # the samples of one prompt differ: it samples, with a seed per index
