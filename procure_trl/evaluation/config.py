"""What an evaluation run does: :class:`EvaluationConfig`, the arguments of ``procure evaluate``."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from procure_trl.concepts import Concept
from procure_trl.dataset.prompt_format import PROMPT_FORMAT_CHOICES
from procure_trl.errors import UserError
from procure_trl.evaluation.model_loading import ModelArguments

__all__ = ["EvaluationConfig", "DEFAULT_STOP_SEQUENCES", "BACKENDS", "parse_stop_sequences"]

#: Generation stops at these strings, which only start top-level statements no program needs (a main block, a
#: print, a test) and never appear in a reference solution: they save tokens, while where a completion ends is
#: decided by program-aware truncation (:mod:`procure_trl.evaluation.truncation`). Stop strings that start code a
#: program may need (``"\ndef "``, ``"\nclass "``, ``"\n#"``) would cut helpers and globals written before the
#: entry point.
DEFAULT_STOP_SEQUENCES: tuple[str, ...] = ("\nif __name__", "\nprint(", "\nassert ")

#: ``--prompt-format``: a format of :mod:`procure_trl.dataset.prompt_format`, or ``auto``.
PromptFormatChoice = Literal["auto", "completion", "chat"]


def parse_stop_sequences(text: str) -> tuple[str, ...]:
    r"""``--stop-sequences``: comma-separated strings with ``\n``, ``\t`` and ``\\`` escapes; an empty value: none."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\"}
    unescape = functools.partial(re.sub, r"\\([nt\\])", lambda m: escapes[m.group(1)])
    return tuple(unescape(part) for part in text.split(",") if part)


#: Generation backends: ``auto`` picks vLLM when it is installed and a GPU is visible, transformers otherwise.
Backend = Literal["auto", "transformers", "vllm"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def _ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"takes comma-separated integers like 1,5, not {text!r}") from None


@dataclass
class EvaluationConfig(ModelArguments):
    r"""Settings of one evaluation run (every field is a ``procure evaluate`` option). The model fields (`model`,
    `adapter`, `dtype`, `device`, `trust_remote_code`, `load_in_4bit` and the adapter guards `allow_train_overlap`,
    `allow_base_mismatch`) are :class:`~procure_trl.evaluation.model_loading.ModelArguments`, documented there and
    shared with ``procure attention-report``.

    Parameters:
        task (`str`, defaults to `"generate"`):
            `generate` (pass@k and CCS of written programs), `repair` (fix the buggy programs of `mutants`: repair
            pass@k and consistency across the two contexts of a bug) or `detect` (judge correct vs buggy by the
            likelihood of two fixed answers: accuracy and consistency); see docs/downstream.md.
        mutants (`str`, *optional*):
            A `procure mutate` JSONL file: its killed mutant pairs are what `repair` and `detect` score. With
            `dataset` instead, they come from its `mutants` config (`procure build --mutants`), `split` only.
        benchmark (`str`, *optional*):
            `humaneval`, `mbpp`, `mbpp-sanitized`, `codecontests` or a problems JSONL path: the problems and their
            tests. `None`: `humaneval`, or with `dataset` the benchmarks its task ids come from (comma-separated
            names are accepted with `dataset`).
        output_dir (`str`, defaults to `"outputs/evaluation"`):
            Where `report.json`, `summary.md`, the plots and the completion cache go.
        counterfactuals (`str`, *optional*):
            A `procure perturb` JSONL for this benchmark; without it only pass@k on the originals is measured.
        dataset (`str`, *optional*):
            A counterfactual dataset made by the dataset builder (a local folder or a Hub id): the tasks, original
            programs and counterfactual rows of its `split` are evaluated (instead of the whole benchmark and
            `counterfactuals`), so a model trained on `train` is scored on held-out tasks.
        dataset_config (`str`, defaults to `"all"`):
            Config (subset) of `dataset`: `all` or one concept.
        concepts (`list[str]`, *optional*):
            Evaluate only these concepts of the counterfactual file; `None`: all five.
        split (`str`, *optional*):
            With `dataset`: its split to evaluate (`None`: `test`). Otherwise the benchmark split passed to the
            loader (MBPP / CodeContests); `None` is the loader's default.
        limit (`int`, *optional*):
            Evaluate only the first `limit` problems (and their counterfactuals); `None`: all.
        n (`int`, defaults to `5`):
            Completions sampled per prompt.
        k (`tuple[int, ...]`, defaults to `(1, 5)`):
            The k of pass@k; each must be <= `n`.
        temperature (`float`, defaults to `0.8`):
            Sampling temperature; 0 means greedy decoding (then all `n` samples are the same).
        top_p (`float`, defaults to `0.95`):
            Nucleus sampling threshold, in (0, 1].
        max_new_tokens (`int`, defaults to `512`):
            Tokens generated per completion at most.
        batch_size (`int`, defaults to `8`):
            Prompts per generation call; the cache is written after each call, so this is also the most work
            an interruption loses.
        stop_sequences (`tuple[str, ...]`, defaults to `DEFAULT_STOP_SEQUENCES`):
            Generation stops at the first of these strings (on the command line: comma-separated, with `\n`
            escapes; an empty value: none). The completion is then truncated where its program ends.
        prompt_format (`str`, defaults to `"auto"`):
            `completion` (the model continues the program text) or `chat` (the user turn states the task, the
            program is the assistant's answer); see `procure_trl.dataset.prompt_format`. `auto`: the format the adapter
            was trained in, else the format of `dataset`, else `chat` when the tokenizer has a chat template and
            `completion` otherwise.
        allow_format_mismatch (`bool`, defaults to `False`):
            Evaluate in another `prompt_format` than the adapter was trained in (or the dataset was built in);
            refused by default.
        backend (`str`, defaults to `"auto"`):
            `auto`, `transformers` or `vllm`.
        line_fraction (`float`, defaults to `0.75`):
            Share of a solution's lines kept in the prompt of non-if/else counterfactuals.
        if_else_at_branch (`bool`, defaults to `True`):
            Cut `if_else_flip` programs at the then-branch of the flipped `if`; `False`: use the line cut for
            them too.
        timeout (`float`, defaults to `5.0`):
            Seconds each program (with its tests) may run.
        num_workers (`int`, defaults to `4`):
            Programs executed in parallel.
        confidence (`float`, defaults to `0.95`):
            Coverage of the CCS bootstrap intervals.
        n_bootstrap (`int`, defaults to `1000`):
            Bootstrap resamples for the CCS intervals.
        seed (`int`, defaults to `0`):
            Seed of sampling and of the bootstrap. Each sample gets a seed of its own from it, its prompt and its
            index, so a completion does not depend on the batch it was generated in.
        cache_file (`str`, *optional*):
            The completion cache; `None`: `output_dir/completions.jsonl`. A rerun with the same model (the same
            files: a model or adapter rewritten in place is sampled afresh) and sampling settings reuses it, so an
            interrupted run resumes, with the same completions as a run that was not interrupted.
    """

    task: Literal["generate", "repair", "detect"] = field(
        default="generate",
        metadata={"help": "generate: pass@k and CCS of written programs; repair: fix the buggy programs of --mutants "
                          "(repair pass@k, consistency across the two contexts); detect: judge correct vs buggy by "
                          "the likelihood of two fixed answers (accuracy, consistency); see docs/downstream.md"},
    )
    mutants: str | None = field(
        default=None, metadata={"help": "`procure mutate` JSONL: the killed mutant pairs of --task repair/detect "
                                        "(or --dataset: its mutants config)"}
    )
    benchmark: str | None = field(
        default=None,
        metadata={"help": "humaneval, mbpp, mbpp-sanitized, codecontests, or a problems JSONL path (default: "
                          "humaneval; with --dataset: the benchmarks of its task ids)"},
    )
    output_dir: str = field(
        default="outputs/evaluation",
        metadata={"help": "output directory (report.json, summary.md, plots, completion cache)"},
    )
    counterfactuals: str | None = field(
        default=None, metadata={"help": "`procure perturb` JSONL for this benchmark; enables CCS"}
    )
    dataset: str | None = field(
        default=None,
        metadata={"help": "counterfactual dataset (local folder or Hub id) made by the dataset builder: evaluate "
                          "the tasks and counterfactuals of its --split (held-out tasks)"},
    )
    dataset_config: str = field(default="all", metadata={"help": "config of --dataset: all or one concept"})
    concepts: list[str] | None = field(
        default=None,
        metadata={"help": "comma-separated concepts to evaluate (default: all)", "parse": Concept.parse_list,
                  "metavar": "a,b,..."},
    )
    split: str | None = field(
        default=None, metadata={"help": "split of --dataset (default: test), or benchmark split (MBPP, CodeContests)"}
    )
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N problems"})
    n: int = field(default=5, metadata={"help": "completions sampled per prompt"})
    k: tuple[int, ...] = field(
        default=(1, 5), metadata={"help": "k values of pass@k, each <= --n", "parse": _ks, "metavar": "K,K,..."}
    )
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature; 0 is greedy decoding"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling threshold, in (0, 1]"})
    max_new_tokens: int = field(default=512, metadata={"help": "tokens generated per completion at most"})
    batch_size: int = field(
        default=8,
        metadata={"help": "prompts per generation call (the cache is written after each: the most an "
                          "interruption loses)"},
    )
    stop_sequences: tuple[str, ...] = field(
        default=DEFAULT_STOP_SEQUENCES,
        metadata={"help": "generation stops at these strings: comma-separated, \\n escapes, empty for none (where "
                          "a completion ends is then decided by parsing its program)",
                  "parse": parse_stop_sequences, "metavar": "S,S,...",
                  "default_text": ",".join(s.replace("\n", "\\n") for s in DEFAULT_STOP_SEQUENCES)},
    )
    prompt_format: PromptFormatChoice = field(
        default="auto",
        metadata={"help": "completion or chat; auto: the adapter's training format, else the dataset's, else chat "
                          "when the tokenizer has a chat template"},
    )
    allow_format_mismatch: bool = field(
        default=False,
        metadata={"help": "evaluate in another --prompt-format than the adapter was trained in or the dataset was "
                          "built in (refused by default)"},
    )
    backend: Backend = field(
        default="auto", metadata={"help": "auto: vLLM when installed and a GPU is visible, else transformers"}
    )
    line_fraction: float = field(
        default=0.75, metadata={"help": "share of solution lines kept in the prompts of non-if/else counterfactuals"}
    )
    if_else_at_branch: bool = field(
        default=True,
        metadata={"help": "cut if_else_flip programs at the then-branch of the flipped if, not by lines",
                  "flags": "--if-else-line-cut",
                  "off_help": "cut if_else_flip programs by lines, like the other concepts, instead of at the "
                              "then-branch of the flipped if"},
    )
    timeout: float = field(default=5.0, metadata={"help": "seconds each program (with its tests) may run"})
    num_workers: int = field(default=4, metadata={"help": "programs executed in parallel"})
    confidence: float = field(default=0.95, metadata={"help": "coverage of the CCS bootstrap intervals"})
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the CCS intervals"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and of the bootstrap"})
    cache_file: str | None = field(
        default=None, metadata={"help": "completion cache (default: OUTPUT/completions.jsonl); a rerun reuses it"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.k = tuple(int(v) for v in self.k)
        self.stop_sequences = tuple(self.stop_sequences)
        if self.n < 1:
            raise UserError(f"n={self.n} must be >= 1 (completions sampled per prompt)")
        if not self.k or any(v < 1 for v in self.k):
            raise UserError(f"k={self.k} must be one or more positive integers, e.g. k=(1, 5)")
        too_big = [v for v in self.k if v > self.n]
        if too_big:
            raise UserError(
                f"pass@k needs at least k samples: k={too_big} exceeds n={self.n}; raise n or drop those k"
            )
        if self.temperature < 0:
            raise UserError(f"temperature={self.temperature} must be >= 0 (0 is greedy decoding)")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p={self.top_p} must lie in (0, 1]")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise UserError("max_new_tokens and batch_size must be >= 1")
        if self.prompt_format not in PROMPT_FORMAT_CHOICES:
            raise UserError(f"prompt_format={self.prompt_format!r}; use one of {', '.join(PROMPT_FORMAT_CHOICES)}")
        if self.backend not in BACKENDS:
            raise UserError(f"backend={self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.load_in_4bit and self.backend == "vllm":
            raise UserError("load_in_4bit loads the model with transformers and bitsandbytes: use backend "
                             "transformers (or auto), or drop load_in_4bit")
        if not 0.0 <= self.line_fraction <= 1.0:
            raise UserError(f"line_fraction={self.line_fraction} must lie in [0, 1] (0.75 keeps 75 % of lines)")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit={self.limit} must be >= 1, or None for every problem")
        if self.timeout <= 0 or self.num_workers < 1:
            raise UserError("timeout must be > 0 seconds and num_workers >= 1")
        if self.concepts is not None:
            self.concepts = [c.value for c in Concept.parse_list(self.concepts)]
        if self.task not in ("generate", "repair", "detect"):
            raise UserError(f"task={self.task!r}; use one of generate, repair, detect")
        if self.task != "generate" and not (self.mutants or self.dataset):
            raise UserError(f"task={self.task} needs mutant pairs: --mutants MUTANTS.jsonl (the output of `procure "
                            "mutate`) or --dataset DIR (built with `procure build --mutants`: its mutants config)")
        if self.mutants is not None and self.dataset is not None:
            raise UserError("pass either --dataset (its mutants config holds the pairs) or --mutants, not both")
        if self.mutants is not None and not os.path.isfile(self.mutants):
            raise UserError(f"mutants={self.mutants!r} is not a file; run `procure mutate` first")
        if self.counterfactuals is not None and not os.path.isfile(self.counterfactuals):
            raise UserError(f"counterfactuals={self.counterfactuals!r} is not a file; run `procure perturb` first")
        if self.dataset is not None:
            if self.counterfactuals is not None:
                raise UserError(
                    "pass either --dataset (its split holds the counterfactuals) or --counterfactuals, not both"
                )
            self.split = self.split or "test"
        elif self.benchmark is None:
            self.benchmark = "humaneval"

    @property
    def evaluated_on(self) -> str:
        """What the run scores, in words: the benchmark, or the dataset split (and where its tests came from)."""
        if self.dataset:
            return f"dataset {self.dataset} (config {self.dataset_config}, split {self.split})"
        return f"benchmark {self.benchmark}"

    @property
    def completion_cache_path(self) -> str:
        return self.cache_file or os.path.join(self.output_dir, "completions.jsonl")

    def sampling_fingerprint(self) -> dict[str, Any]:
        """What makes two completions of one prompt interchangeable: the cache key besides prompt and index.

        The model and the adapter enter by what they are, not by their names
        (:func:`procure_trl.evaluation.model_loading.model_fingerprint`: a local folder's config, tokenizer and weight
        files; a Hub id at its revision), so a model retrained into the same folder never reuses the old one's
        completions. The seed enters when sampling: each sample is drawn with a seed of its own, derived from
        it (:func:`procure_trl.evaluation.sampling.request_seed`).
        """
        from procure_trl.evaluation.model_loading import model_fingerprint

        return {
            "model": model_fingerprint(self.model),
            "adapter": model_fingerprint(self.adapter),
            # 4-bit weights give other logits than the unquantized model: their completions are not interchangeable
            **({"load_in_4bit": True} if self.load_in_4bit else {}),
            "seed": self.seed if self.temperature > 0 else None,
            "temperature": self.temperature,
            "top_p": self.top_p if self.temperature > 0 else None,
            "max_new_tokens": self.max_new_tokens,
            "stop_sequences": list(self.stop_sequences),
            # How a cut prompt is read: in its trained segments, healed at the cut (prompt_format.aligned_input).
            "cut_prompts": "aligned-healed",
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["k"] = list(self.k)
        out["stop_sequences"] = list(self.stop_sequences)
        return out
