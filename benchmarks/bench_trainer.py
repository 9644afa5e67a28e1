"""Step time and peak memory: ConceptAwareSFTTrainer vs plain SFTTrainer vs a naive eager implementation.

Every configuration trains the same randomly initialised Llama (default: 4 layers, hidden 256, 8 heads)
on the same pre-tokenized rows (sequence length 512, batch 4, half of them counterfactuals with ~10%
perturbed completion tokens) in a FRESH subprocess, so that peak memory is that configuration's own:

* ``sft``      TRL's SFTTrainer (sdpa), the baseline;
* ``concept``  ConceptAwareSFTTrainer, lambda = 0.1, attention term on all layers (the default);
* ``naive``    the same loss computed the obvious way: eager attention with ``output_attentions=True``,
               full logits, the attention mass summed from the materialised probabilities.

Memory: on CUDA ``torch.cuda.max_memory_allocated``. On CPU torch has no allocator statistics, so one
extra step, after the timed ones, runs under ``torch.profiler`` with ``profile_memory=True``: replaying its
allocations and frees in order gives the peak of the tensor bytes that step adds to what was live before it
(activations, gradients, temporaries; exact at the allocator level, unlike RSS). The process's peak RSS
(``ru_maxrss``, imports and allocator slack included) is shown too.
Time: median wall time of the measured optimizer steps (forward, backward, AdamW step), after warm-up.
Rounds interleave the configurations (sft, concept, naive, sft, ...) to spread machine noise.

    python benchmarks/bench_trainer.py                      # CPU defaults
    python benchmarks/bench_trainer.py --steps 10 --rounds 3 --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = ("sft", "concept", "naive")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_tensor_bytes(prof) -> int:
    """Peak of live tensor bytes during a profiled region, relative to its start (allocations are the ops'
    own ``self_cpu_memory_usage``, frees are ``[memory]`` events with negative sizes)."""
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _rows(num_rows: int, seq_len: int, vocab: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    prompt_len = seq_len // 8
    rows = []
    for i in range(num_rows):
        ids = [rng.randrange(4, vocab) for _ in range(seq_len)]
        completion = [0] * prompt_len + [1] * (seq_len - prompt_len)
        mask = [0] * seq_len
        if i % 2 == 1:  # counterfactual: ~10% of completion tokens perturbed, in spans of 3
            for start in rng.sample(range(prompt_len, seq_len - 3), (seq_len - prompt_len) // 30):
                mask[start : start + 3] = [1, 1, 1]
        rows.append({"input_ids": ids, "completion_mask": completion, "perturbation_mask": mask})
    return rows


def _naive_trainer_class():
    import torch

    from procure_trl.training import ConceptAwareSFTTrainer
    from procure_trl.training.loss import concept_sensitive_loss

    class NaiveConceptTrainer(ConceptAwareSFTTrainer):
        """The loss from materialised attention probabilities (eager + output_attentions) and full logits."""

        naive_lambda = 0.1

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            delta = inputs.pop("perturbation_mask")
            labels = inputs["labels"]
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], output_attentions=True,
                        use_cache=False)
            logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
            target = labels[:, 1:]
            nll = -logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != -100)
            mass = torch.stack([(a * delta[:, None, None, :]).sum(-1).mean(1) for a in out.attentions]).mean(0)
            normalizer = num_items_in_batch if not isinstance(num_items_in_batch, (int, type(None))) else None
            return concept_sensitive_loss(nll, labels, delta, mass, lam=self.naive_lambda, normalizer=normalizer).loss

    return NaiveConceptTrainer


def run_one(cfg: str, opts: argparse.Namespace) -> dict:
    """Train ``warmup + steps`` optimizer steps of one configuration; return its measurements."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer
    from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

    torch.set_num_threads(opts.threads or torch.get_num_threads())
    cuda = torch.cuda.is_available()
    tokenizer = build_tiny_tokenizer(vocab_size=opts.vocab)
    model = build_tiny_llama(
        tokenizer, num_hidden_layers=opts.layers, hidden_size=opts.hidden, num_attention_heads=opts.heads,
        num_key_value_heads=opts.heads, intermediate_size=4 * opts.hidden, max_position_embeddings=opts.seq_len,
        attn_implementation="eager" if cfg == "naive" else "sdpa",
    )
    total_steps = opts.warmup + opts.steps + (0 if cuda else 1)  # CPU: one more step, memory-profiled
    rows = _rows(opts.batch * total_steps, opts.seq_len, len(tokenizer), seed=0)
    common = dict(
        output_dir=os.path.join(opts.tmp, cfg), max_steps=total_steps, per_device_train_batch_size=opts.batch,
        max_length=opts.seq_len, learning_rate=1e-4, report_to=[], save_strategy="no", logging_steps=10**6,
        disable_tqdm=True, bf16=cuda, use_cpu=not cuda, completion_only_loss=True, shuffle_dataset=False,
        gradient_checkpointing=opts.gradient_checkpointing, dataloader_num_workers=0, seed=0,
    )
    if cfg == "sft":
        dataset = Dataset.from_list([{k: r[k] for k in ("input_ids", "completion_mask")} for r in rows])
        trainer = SFTTrainer(model, args=SFTConfig(**common), train_dataset=dataset, processing_class=tokenizer)
    else:
        args = ConceptAwareSFTConfig(**common, concept_loss_weight=0.0 if cfg == "naive" else 0.1)
        cls = _naive_trainer_class() if cfg == "naive" else ConceptAwareSFTTrainer
        trainer = cls(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)

    times: list[float] = []
    step_peak: list[int] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            elif state.global_step == total_steps - 1:
                self.prof = torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
                )
                self.prof.__enter__()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)
            if getattr(self, "prof", None) is not None:
                self.prof.__exit__(None, None, None)
                step_peak.append(_peak_tensor_bytes(self.prof))
                self.prof = None

    trainer.add_callback(StepTimer())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    base_rss = _rss_mb()
    trainer.train()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "config": cfg,
        "step_s": statistics.median(times[opts.warmup : opts.warmup + opts.steps]),
        "peak_rss_mb": peak_rss,
        "train_rss_mb": peak_rss - base_rss,
        "train_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if cuda else step_peak[0] / 2**20,
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)",
    }
    if cuda:
        result["model_mem_mb"] = base
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=512, help="tiny tokenizer vocabulary (the LM head stays small)")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2, help="fresh subprocesses per configuration")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="TRL's default; off here unless given")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--tmp", default="/tmp/procure_bench_trainer")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    opts = p.parse_args()

    if opts.worker:
        print("RESULT " + json.dumps(run_one(opts.worker, opts)), flush=True)
        return

    configs = [c for c in opts.configs.split(",") if c]
    passthrough = []  # the worker gets the same options, less --json (the parent writes the file)
    skip = False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--json":
            skip = True
        elif not a.startswith("--json="):
            passthrough.append(a)
    results: dict[str, list[dict]] = {c: [] for c in configs}
    for r in range(opts.rounds):
        for cfg in configs:
            proc = subprocess.run(
                [sys.executable, __file__, *passthrough, "--worker", cfg], capture_output=True, text=True, check=False
            )
            line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{cfg} failed (round {r}):\n{proc.stderr[-3000:]}")
            results[cfg].append(json.loads(line[len("RESULT "):]))
            print(f"round {r} {cfg}: {results[cfg][-1]}", file=sys.stderr, flush=True)

    summary = {
        c: {
            "step_s": statistics.median(x["step_s"] for x in results[c]),
            "train_mem_mb": statistics.median(x["train_mem_mb"] for x in results[c]),
            "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in results[c]),
            "train_rss_mb": statistics.median(x["train_rss_mb"] for x in results[c]),
        }
        for c in configs
    }
    base = summary.get("sft")
    device = results[configs[0]][0]["device"]
    mem_label = "peak CUDA alloc (MiB)" if "CPU" not in device else "step peak tensors (MiB)"
    print(
        f"\nDevice: {device}; Llama {opts.layers} layers, hidden {opts.hidden}, {opts.heads} heads; "
        f"seq {opts.seq_len}, "
        f"batch {opts.batch}; gradient checkpointing {'on' if opts.gradient_checkpointing else 'off'}; "
        f"median of {opts.steps} steps x {opts.rounds} rounds\n"
    )
    header = (
        f"| {'trainer':<38} | {'step (s)':>9} | {'x sft':>6} | {mem_label:>23} | {'x sft':>6} "
        f"| {'train RSS (MiB)':>15} | {'peak RSS (MiB)':>14} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(col)) for col in header.split("|")[1:-1]) + "|")
    names = {"sft": "SFTTrainer (sdpa)", "concept": "ConceptAwareSFTTrainer (lambda=0.1)",
             "naive": "naive eager + output_attentions"}
    for c in configs:
        s = summary[c]
        rt = f"{s['step_s'] / base['step_s']:.2f}" if base else "-"
        rm = f"{s['train_mem_mb'] / base['train_mem_mb']:.2f}" if base else "-"
        print(
            f"| {names[c]:<38} | {s['step_s']:>9.3f} | {rt:>6} | {s['train_mem_mb']:>23.0f} | {rm:>6} "
            f"| {s['train_rss_mb']:>15.0f} | {s['peak_rss_mb']:>14.0f} |"
        )
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"options": vars(opts), "runs": results, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
