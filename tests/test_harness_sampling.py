"""Completion backends and the resumable completion cache."""

from __future__ import annotations

import json

import pytest

from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.sampling import (
    CompletionCache,
    GenerationRequest,
    ScriptedBackend,
    TransformersBackend,
    generate_completions,
    truncate_at_stop,
)


def test_truncate_at_earliest_stop():
    text = "    return x\n\nprint(f(1))\ndef g():\n"
    assert truncate_at_stop(text, ("\ndef ", "\nprint(")) == "    return x\n"
    assert truncate_at_stop(text, ()) == text
    assert truncate_at_stop("    if a:\n        # keep\n", ("\n#",)) == "    if a:\n        # keep\n"


def test_cache_skips_done_work_and_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "completions.jsonl"
    fingerprint = {"model": "m", "temperature": 0.8}
    requests = [GenerationRequest(p, i) for p in ("a", "bb") for i in range(3)]
    backend = ScriptedBackend(lambda prompt, i: f"{prompt}-{i}")
    first = generate_completions(requests[:4], backend, CompletionCache(path, fingerprint), batch_size=2)
    assert first == ["a-0", "a-1", "a-2", "bb-0"]
    # An interruption in the middle of a write leaves half a line behind.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "abc", "sample_ind')
    backend.calls.clear()
    cache = CompletionCache(path, fingerprint)
    assert len(cache) == 4
    second = generate_completions(requests, backend, cache, batch_size=2)
    assert second == ["a-0", "a-1", "a-2", "bb-0", "bb-1", "bb-2"]
    # Batches [a0 a1] [a2 bb0] are cached: only the last one is asked.
    assert [[(r.prompt, r.sample_index) for r in call] for call in backend.calls] == [[("bb", 1), ("bb", 2)]]
    assert len(path.read_text().splitlines()) == 4 + 1 + 2


def test_a_partly_cached_batch_is_generated_whole_and_only_its_missing_part_stored(tmp_path):
    path = tmp_path / "completions.jsonl"
    requests = [GenerationRequest(p, i) for p in ("a", "bb") for i in range(2)]
    generate_completions(requests[:1], ScriptedBackend(lambda p, i: f"{p}-{i}"), CompletionCache(path, {}))
    backend = ScriptedBackend(lambda p, i: f"{p}-{i} again")
    out = generate_completions(requests, backend, CompletionCache(path, {}), batch_size=3)
    # The batches of the whole list are [a0 a1 bb0] [bb1]: the first is asked whole, as an uninterrupted run
    # would have generated it (same padding), but its cached a0 is kept.
    assert [[(r.prompt, r.sample_index) for r in call] for call in backend.calls] == [
        [("a", 0), ("a", 1), ("bb", 0)], [("bb", 1)]]
    assert out == ["a-0", "a-1 again", "bb-0 again", "bb-1 again"]
    assert len(path.read_text().splitlines()) == 4


def test_cache_is_keyed_by_model_and_sampling(tmp_path):
    path = tmp_path / "c.jsonl"
    request = [GenerationRequest("p", 0)]
    generate_completions(request, ScriptedBackend({"p": ["old"]}), CompletionCache(path, {"model": "a"}))
    assert generate_completions(request, ScriptedBackend({"p": ["new"]}), CompletionCache(path, {"model": "b"})) == [
        "new"
    ]
    assert generate_completions(request, ScriptedBackend({"p": ["x"]}), CompletionCache(path, {"model": "a"})) == [
        "old"
    ]
    assert all("key" in json.loads(line) for line in path.read_text().splitlines())


def test_stop_sequences_applied_before_caching(tmp_path):
    cache = CompletionCache(tmp_path / "c.jsonl", {})
    out = generate_completions(
        [GenerationRequest("p", 0)],
        ScriptedBackend({"p": ["  return 1\ndef other():"]}),
        cache,
        stop_sequences=("\ndef ",),
    )
    assert out == ["  return 1"] and cache.get(GenerationRequest("p", 0)) == "  return 1"


def test_scripted_backend_unknown_prompt_is_an_error():
    with pytest.raises(KeyError, match="no completion"):
        ScriptedBackend({"a": ["x"]}).generate([GenerationRequest("b", 0)])
    assert ScriptedBackend({}, default="pass").generate([GenerationRequest("b", 3)]) == ["pass"]


def test_transformers_backend_left_pads_and_returns_only_new_text(tiny_tokenizer, tiny_llama):
    config = EvaluationConfig(
        model="tiny", n=2, k=(1,), temperature=0.0, max_new_tokens=6, stop_sequences=()
    )
    backend = TransformersBackend(tiny_llama, tiny_tokenizer, config)
    prompts = ["def add(a, b):\n", "for i in range(10):\n    total = total + i\n"]
    together = backend.generate([GenerationRequest(p, 0) for p in prompts])
    alone = [backend.generate([GenerationRequest(p, 0)])[0] for p in prompts]
    # Greedy decoding: padding the short prompt on the left must not change what it generates.
    assert together == alone
    assert tiny_tokenizer.padding_side == "left"
    for prompt, completion in zip(prompts, together):
        full = tiny_tokenizer.decode(tiny_tokenizer(prompt + completion)["input_ids"])
        assert full.startswith(prompt) and isinstance(completion, str)


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="exceeds n=2"):
        EvaluationConfig(model="m", n=2, k=(1, 5))
    with pytest.raises(ValueError, match="top_p"):
        EvaluationConfig(model="m", top_p=0)
    with pytest.raises(ValueError, match="unknown concept"):
        EvaluationConfig(model="m", concepts=["flip"])
    with pytest.raises(ValueError, match="backend"):
        EvaluationConfig(model="m", backend="tgi")


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (checks batched generation on the device)"
)
def test_transformers_backend_on_cuda_matches_unbatched(tiny_tokenizer, tiny_llama, tmp_path):
    import torch

    model_dir = tmp_path / "tiny"
    tiny_llama.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    config = EvaluationConfig(model=str(model_dir), n=1, k=(1,), temperature=0.0, max_new_tokens=8, dtype="float32")
    backend = TransformersBackend.from_pretrained(config)
    assert backend.model.device.type == "cuda"
    prompts = ["def add(a, b):\n", "for i in range(10):\n    total = total + i\n", "class Stack:\n"]
    together = backend.generate([GenerationRequest(p, 0) for p in prompts])
    alone = [backend.generate([GenerationRequest(p, 0)])[0] for p in prompts]
    assert together == alone
    sampled = TransformersBackend(backend.model, backend.tokenizer, EvaluationConfig(model="m", n=2, k=(1,)))
    torch.manual_seed(0)
    assert len(sampled.generate([GenerationRequest(prompts[0], i) for i in range(2)])) == 2


def test_vllm_backend_without_vllm_says_how_to_install():
    import importlib.util

    from procure_trl.evaluation.sampling import build_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; this checks the message shown when it is not")
    with pytest.raises(ImportError, match="pip install vllm"):
        build_backend(EvaluationConfig(model="m", backend="vllm"))
