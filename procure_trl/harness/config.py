"""What an evaluation run does: :class:`EvaluationConfig`, the arguments of ``procure evaluate``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from procure_trl.concepts import Concept

__all__ = ["EvaluationConfig", "DEFAULT_STOP_SEQUENCES", "BACKENDS"]

#: Completions end where a new top-level statement starts (the Codex paper's HumanEval stop sequences,
#: plus a Markdown fence). They only match at column 0, so a completion inside a function body is not cut.
#: Note that ``"\ndef "`` also ends a completion before a helper function the model might add after the
#: entry point; drop it for benchmarks whose solutions need helpers.
DEFAULT_STOP_SEQUENCES: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")

#: Generation backends: ``auto`` picks vLLM when it is installed and a GPU is visible, transformers otherwise.
BACKENDS = ("auto", "transformers", "vllm")


@dataclass
class EvaluationConfig:
    """Settings of one evaluation run (every field has a ``procure evaluate`` flag of the same name).

    Attributes:
        model: a Hub model id or a local directory with a causal LM and its tokenizer.
        benchmark: ``humaneval``, ``mbpp``, ``mbpp-sanitized``, ``codecontests`` or a problems JSONL path.
        output_dir: where ``report.json``, ``summary.md``, the plots and the completion cache go.
        adapter: a PEFT adapter directory applied on top of ``model`` (e.g. a ProCURE LoRA run).
        counterfactuals: a ``procure perturb`` JSONL for this benchmark; without it only pass@k on the
            originals is measured.
        concepts: evaluate only these concepts of the counterfactual file (default: all five).
        split: benchmark split passed to the loader (MBPP / CodeContests); ``None`` is the loader's default.
        limit: evaluate only the first ``limit`` problems (and their counterfactuals); ``None``: all.
        n: completions sampled per prompt.
        k: the k of pass@k; each must be <= ``n``.
        temperature: sampling temperature; 0 means greedy decoding (then all ``n`` samples are the same).
        top_p: nucleus sampling threshold, in (0, 1].
        max_new_tokens: tokens generated per completion at most.
        batch_size: prompts per generation call; the cache is written after each call, so this is also the
            most work an interruption loses.
        stop_sequences: a completion is cut before the first of these strings.
        backend: ``auto``, ``transformers`` or ``vllm``.
        dtype: model weights' dtype for transformers (``auto``, ``bfloat16``, ``float16``, ``float32``).
        device: torch device for transformers (``None``: CUDA when available, else CPU).
        trust_remote_code: allow model repositories with custom code.
        line_fraction: share of a solution's lines kept in the prompt of non-if/else counterfactuals.
        if_else_at_branch: cut ``if_else_flip`` programs at the then-branch of the flipped ``if`` (``False``:
            use the line cut for them too).
        timeout: seconds each program (with its tests) may run.
        num_workers: programs executed in parallel.
        confidence: coverage of the CCS bootstrap intervals.
        n_bootstrap: bootstrap resamples for the CCS intervals.
        seed: seed of sampling and of the bootstrap.
        metrics_dir: folder holding the ``pass_at_k`` and ``ccs`` metric modules (default: the repository's
            ``evaluation/metrics``, or ``$PROCURE_METRICS_DIR``).
        cache_file: the completion cache (default ``output_dir/completions.jsonl``); a rerun with the same
            model and sampling settings reuses it, so an interrupted run resumes.
    """

    model: str
    benchmark: str = "humaneval"
    output_dir: str = "outputs/evaluation"
    adapter: str | None = None
    counterfactuals: str | None = None
    concepts: list[str] | None = None
    split: str | None = None
    limit: int | None = None
    n: int = 5
    k: tuple[int, ...] = (1, 5)
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int = 8
    stop_sequences: tuple[str, ...] = DEFAULT_STOP_SEQUENCES
    backend: str = "auto"
    dtype: str = "auto"
    device: str | None = None
    trust_remote_code: bool = False
    line_fraction: float = 0.75
    if_else_at_branch: bool = True
    timeout: float = 5.0
    num_workers: int = 4
    confidence: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    metrics_dir: str | None = None
    cache_file: str | None = None

    def __post_init__(self) -> None:
        self.k = tuple(int(v) for v in self.k)
        self.stop_sequences = tuple(self.stop_sequences)
        if self.n < 1:
            raise ValueError(f"n={self.n} must be >= 1 (completions sampled per prompt)")
        if not self.k or any(v < 1 for v in self.k):
            raise ValueError(f"k={self.k} must be one or more positive integers, e.g. k=(1, 5)")
        too_big = [v for v in self.k if v > self.n]
        if too_big:
            raise ValueError(
                f"pass@k needs at least k samples: k={too_big} exceeds n={self.n}; raise n or drop those k"
            )
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 is greedy decoding)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p={self.top_p} must lie in (0, 1]")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}; use one of {', '.join(BACKENDS)}")
        if not 0.0 <= self.line_fraction <= 1.0:
            raise ValueError(f"line_fraction={self.line_fraction} must lie in [0, 1] (0.75 keeps 75 % of lines)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be >= 1, or None for every problem")
        if self.timeout <= 0 or self.num_workers < 1:
            raise ValueError("timeout must be > 0 seconds and num_workers >= 1")
        if self.concepts is not None:
            self.concepts = [c.value for c in Concept.parse_list(self.concepts)]
        if self.counterfactuals is not None and not os.path.isfile(self.counterfactuals):
            raise ValueError(f"counterfactuals={self.counterfactuals!r} is not a file; run `procure perturb` first")

    @property
    def completion_cache_path(self) -> str:
        return self.cache_file or os.path.join(self.output_dir, "completions.jsonl")

    def sampling_fingerprint(self) -> dict[str, Any]:
        """What makes two completions of one prompt interchangeable: the cache key besides prompt and index."""
        return {
            "model": self.model,
            "adapter": self.adapter,
            "temperature": self.temperature,
            "top_p": self.top_p if self.temperature > 0 else None,
            "max_new_tokens": self.max_new_tokens,
            "stop_sequences": list(self.stop_sequences),
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["k"] = list(self.k)
        out["stop_sequences"] = list(self.stop_sequences)
        return out
