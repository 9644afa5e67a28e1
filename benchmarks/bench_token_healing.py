"""What reading cut prompts as trained (segments + token healing) costs in generation, side by side in one run.

A byte-level BPE tokenizer with a real-sized vocabulary is trained on local Python source (the standard library),
a 2-layer Llama of that vocabulary is initialised at random, and the same cut prompts (rule-engine counterfactuals
of HumanEval, both sides of every row, cut as ``procure evaluate`` cuts them) are generated twice with
``TransformersBackend``: read as one piece (``head`` not given: the whole cut is the prompt segment, nothing is
healed) and aligned (``head`` given: trained segments, the cut's last word forced through ``ForcedPrefix``).
Also timed: building the vocabulary index healing needs (once per backend).

    python benchmarks/bench_token_healing.py [--vocab-size 32000] [--prompts 64] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import glob
import os
import sysconfig
import tempfile
import time
from pathlib import Path


def train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = []
    for path in files:
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):  # (a few test files of the standard library are not UTF-8)
            continue
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    return fast, len(texts)


def cut_requests(limit: int):
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.counterfactuals import load_counterfactual_variants
    from procure_trl.evaluation.sampling import GenerationRequest
    from procure_trl.evaluation.selection import cut_rows
    from procure_trl.perturb.engine import GenerationConfig, generate_to_jsonl
    from procure_trl.problems import load_problems

    problems = load_problems("humaneval")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cf.jsonl"
        generate_to_jsonl(problems, path, GenerationConfig(seed=0, num_workers=2, progress=False))
        by_id = {p.task_id: p for p in problems}
        rows, _ = cut_rows(load_counterfactual_variants(path, by_id, "humaneval"), by_id, EvaluationConfig(model="m"))
    sides = [(r.reference_prompt, r.reference_head) for r in rows] + [
        (r.counterfactual_prompt, r.counterfactual_head) for r in rows]
    unique = list(dict(sides).items())[:limit]
    return ([GenerationRequest(prompt, 0) for prompt, _ in unique],
            [GenerationRequest(prompt, 0, head) for prompt, head in unique])


def timed(backend, requests, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(requests), batch_size):
        backend.generate(requests[i : i + batch_size])
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=32_000)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.sampling import TransformersBackend, _VocabText
    from procure_trl.testing_utils import build_tiny_llama

    torch.manual_seed(0)
    start = time.perf_counter()
    tokenizer, n_files = train_tokenizer(args.vocab_size)
    print(f"tokenizer: byte-level BPE, {len(tokenizer):,} tokens, trained on {n_files} stdlib files in "
          f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    vocab = _VocabText.for_tokenizer(tokenizer)
    index_s = time.perf_counter() - start
    assert vocab is not None, "byte-level BPE token texts spell the decoded text"
    plain, aligned = cut_requests(args.prompts)
    model = build_tiny_llama(tokenizer, max_position_embeddings=4096)
    config = EvaluationConfig(model="m", n=1, k=(1,), temperature=0.0, max_new_tokens=args.max_new_tokens)
    backend = TransformersBackend(model, tokenizer, config)
    backend._vocab_text = vocab  # built above, timed on its own
    forced = [backend._input(r)[1] for r in aligned]
    print(f"{len(aligned)} cut prompts (HumanEval, both sides), {sum(bool(f) for f in forced)} healed; "
          f"forced text: mean {sum(map(len, forced)) / len(forced):.1f} characters; "
          f"batch {args.batch_size}, {args.max_new_tokens} new tokens, greedy, CPU, {torch.get_num_threads()} threads")
    timings: dict[str, list[float]] = {"one piece (before)": [], "aligned + healed": []}
    for _ in range(args.repeats):  # interleaved, so that drift in the machine hits both alike
        timings["one piece (before)"].append(timed(backend, plain, args.batch_size))
        timings["aligned + healed"].append(timed(backend, aligned, args.batch_size))
    base = min(timings["one piece (before)"])
    print()
    print("| reading of the cut prompts | generation, best of "
          f"{args.repeats} (s) | per prompt (ms) | ratio |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        best = min(values)
        print(f"| {name} | {best:.2f} | {1000 * best / len(plain):.1f} | {best / base:.2f} |")
    print(f"| vocabulary index for healing (once per backend) | {index_s:.2f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
