"""Completions belong to the model that wrote them: the cache key fingerprints the model's files, and every
sample has a seed of its own, so a resumed evaluation writes what an uninterrupted one writes."""

from __future__ import annotations

import json
import os

import pytest

from procure_trl.evaluation import model_loading as pretrained
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.guards import check_adapter_base
from procure_trl.evaluation.model_loading import folder_fingerprint, model_fingerprint, resolve_model_name
from procure_trl.evaluation.sampling import (
    GenerationRequest,
    SeededSampler,
    TransformersBackend,
    request_seed,
)


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


# ------------------------------------------------------------------------------- on the tiny model, end to end

TOY_PROBLEMS = [
    {"task_id": f"toy/{name}", "prompt": prompt, "solution": solution, "tests": tests, "entry_point": name}
    for name, prompt, solution, tests in [
        ("double", "def double(x):\n", "    return 2 * x\n", "assert double(2) == 4\n"),
        ("inc", "def inc(x):\n    \"\"\"x plus one.\"\"\"\n", "    return x + 1\n", "assert inc(1) == 2\n"),
        ("neg", "def neg(x):\n", "    return -x\n", "assert neg(1) == -1\n"),
    ]
]


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_tokenizer, tiny_llama):
    path = tmp_path / "tiny-model"
    tiny_llama.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def toy_benchmark(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in TOY_PROBLEMS))
    return path


def _completions(report) -> dict[tuple[str, int], str]:
    """Every completion of a report, by (prompt, sample index)."""
    out = {}
    for task in report["tasks"] if isinstance(report, dict) else report.tasks:
        side = task["original"]
        for index, verdict in enumerate(side["completions"]):
            out[(side["prompt"], index)] = verdict["completion"]
    return out


@pytest.mark.slow
def test_an_interrupted_evaluation_resumes_to_the_same_completions(tmp_path, tiny_model_dir, toy_benchmark,
                                                                    monkeypatch):
    from procure_trl.evaluation.run import evaluate_model
    from procure_trl.problems import load_problems

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    problems = load_problems(str(toy_benchmark))

    def config(name):
        return EvaluationConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / name), n=4, k=(1,),
                                temperature=0.8, max_new_tokens=12, batch_size=3, backend="transformers",
                                timeout=2.0, num_workers=2, n_bootstrap=0)

    whole = evaluate_model(config("whole"), problems=problems)

    class Stopped(Exception):
        pass

    class StopsAfterTwoBatches(TransformersBackend):
        calls = 0

        def generate(self, requests):
            StopsAfterTwoBatches.calls += 1
            if StopsAfterTwoBatches.calls == 3:
                raise Stopped  # the user pressed Ctrl-C while the third batch generated
            return super().generate(requests)

    base = TransformersBackend.from_pretrained(config("cut"))
    with pytest.raises(Stopped):
        evaluate_model(config("cut"), problems=problems,
                       backend=StopsAfterTwoBatches(base.model, base.tokenizer, config("cut")))
    cached = (tmp_path / "cut" / "completions.jsonl").read_text().splitlines()
    assert len(cached) == 2 * 3  # two batches of three written before the interruption, of 12 completions
    resumed = evaluate_model(config("cut"), problems=problems)  # a fresh backend, as a rerun has
    assert len((tmp_path / "cut" / "completions.jsonl").read_text().splitlines()) == 12
    assert _completions(resumed) == _completions(whole)
    assert len(set(_completions(whole).values())) > 3  # it sampled: the samples of a prompt differ


def _save_adapter(model_dir, adapter_dir, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # random A and B
    get_peft_model(model, lora).save_pretrained(adapter_dir)


@pytest.mark.slow
def test_an_adapter_retrained_into_its_folder_is_sampled_again(tmp_path, tiny_model_dir, toy_benchmark, monkeypatch,
                                                               capsys):
    from procure_trl.cli import main

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    adapter = tmp_path / "adapter"
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tiny_model_dir), "--adapter", str(adapter), "--benchmark", str(toy_benchmark),
            "--n", "2", "--k", "1", "--max-new-tokens", "8", "--backend", "transformers", "--timeout", "2",
            "--num-workers", "2", "--n-bootstrap", "0", "--output-dir", str(out)]
    cache = out / "completions.jsonl"

    def lines():
        return [json.loads(line) for line in cache.read_text().splitlines()]

    _save_adapter(tiny_model_dir, adapter, seed=1)
    assert main(args) == 0
    first = lines()
    assert len(first) == 3 * 2
    assert main(args) == 0
    assert lines() == first  # unchanged adapter: every completion reused
    _save_adapter(tiny_model_dir, adapter, seed=2)  # retrained into the same folder
    assert main(args) == 0
    again = lines()
    assert len(again) == 2 * len(first)  # every completion sampled again, by the new adapter
    assert {r["key"] for r in again[len(first):]}.isdisjoint({r["key"] for r in first})
    report = json.loads((out / "report.json").read_text())
    # the report holds the new adapter's completions, truncated where their program ends
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.sampling import CompletionCache, GenerationRequest
    from procure_trl.evaluation.truncation import truncate_completion

    fingerprint = EvaluationConfig(model=str(tiny_model_dir), adapter=str(adapter), n=2, k=(1,),
                                   max_new_tokens=8).sampling_fingerprint()
    new_cache = CompletionCache(str(cache), fingerprint)
    entry_of = {p["prompt"]: p["entry_point"] for p in TOY_PROBLEMS}
    for (prompt, index), completion in _completions(report).items():
        raw = new_cache.get(GenerationRequest(prompt, index))
        assert raw is not None and completion == truncate_completion(prompt, raw, entry_of[prompt])


@pytest.mark.slow
def test_ctrl_c_on_the_cli_and_a_rerun_give_the_uninterrupted_completions(tmp_path, tiny_model_dir, toy_benchmark,
                                                                         monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    from procure_trl.cli import main

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")

    def args(out):
        return ["evaluate", "--model", str(tiny_model_dir), "--benchmark", str(toy_benchmark), "--n", "8", "--k", "1",
                "--max-new-tokens", "24", "--batch-size", "1", "--backend", "transformers", "--timeout", "2",
                "--num-workers", "2", "--n-bootstrap", "0", "--output-dir", str(out)]

    total = 3 * 8
    cache = tmp_path / "cut" / "completions.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "procure_trl.cli", *args(tmp_path / "cut")], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (cache.exists() and cache.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None, f"the run ended before the interrupt: {proc.communicate()}"
            assert time.monotonic() < deadline, "the run wrote no completion in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    written = cache.read_bytes().count(b"\n")
    assert 2 <= written < total, "the interrupt did not land in the middle of the sampling"
    assert main(args(tmp_path / "cut")) == 0
    assert main(args(tmp_path / "whole")) == 0
    resumed = json.loads((tmp_path / "cut" / "report.json").read_text())
    whole = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert len(_completions(whole)) == total
    assert _completions(resumed) == _completions(whole)
