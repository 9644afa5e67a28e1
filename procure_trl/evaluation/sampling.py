"""Sampling completions: backends (transformers, vLLM, scripted) and a resumable completion cache.

A backend turns a batch of :class:`GenerationRequest` (a prompt and the index of the sample) into one
completion each. :func:`generate_completions` asks the backend only for the batches holding a request the
:class:`CompletionCache` does not hold yet and appends every batch to the cache as soon as it is done, so an
interrupted run resumes where it stopped.

A resumed run writes the same completions as one that was not interrupted: every sample is drawn with a seed
of its own (:func:`request_seed`: the run's seed, the prompt and the sample index), not from one random
stream shared by whatever was generated before it, and the batches are cut from the whole request list, so a
resumed batch holds the same requests (the same padding, the same numerics) as it would have.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm.auto import tqdm

from procure_trl.evaluation.config import EvaluationConfig

logger = logging.getLogger(__name__)

__all__ = [
    "GenerationRequest",
    "GenerationBackend",
    "TransformersBackend",
    "VLLMBackend",
    "ScriptedBackend",
    "CompletionCache",
    "generate_completions",
    "truncate_at_stop",
    "build_backend",
    "request_seed",
    "SeededSampler",
    "ForcedPrefix",
]


@dataclass(frozen=True)
class GenerationRequest:
    """Sample number ``sample_index`` of the completion of ``prompt``.

    ``head``: for a cut program in ``completion`` format, where its trained prompt segment ends (characters into
    the program start; :func:`~procure_trl.dataset.prompt_format.aligned_input`). Not part of the request's
    identity: one prompt has one head.
    """

    prompt: str
    sample_index: int
    head: int | None = field(default=None, compare=False)


class GenerationBackend(Protocol):
    """Anything that completes prompts: one completion (text after the prompt) per request, in order."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...


def request_seed(seed: int, request: GenerationRequest) -> int:
    """The seed of one sample: a function of the run's ``seed``, the prompt and the sample index only, so the
    sample comes out the same whichever batch generates it, and whether or not the run was interrupted."""
    text = f"{seed}\0{request.sample_index}\0{request.prompt}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop sequence."""
    cut = len(text)
    for stop in stop_sequences:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]


# ------------------------------------------------------------------------------------------------- cache


class CompletionCache:
    """Completions on disk, keyed by (sampling fingerprint, prompt, sample index); one JSON object a line.

    The fingerprint (:meth:`EvaluationConfig.sampling_fingerprint`: the model's and adapter's files or Hub
    revision, the seed and the sampling settings) is part of the key, so a changed model (even one rewritten in
    the same folder) or another temperature never reuses stale completions. Lines are appended and flushed
    batch by batch; a last line cut short by an interruption is ignored on reload.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: Mapping[str, Any]):
        self.path = os.fspath(path)
        self._model_key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode("utf-8")).hexdigest()
        self._entries: dict[tuple[str, int], str] = {}
        if os.path.exists(self.path):
            self._load()

    def _prompt_key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self._model_key}\0{prompt}".encode()).hexdigest()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                try:
                    row = json.loads(line)
                    self._entries[(row["key"], int(row["sample_index"]))] = row["completion"]
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    # An interrupted write leaves a partial last line: that sample is simply generated again.
                    logger.warning("%s:%d: unreadable cache line skipped", self.path, lineno)

    def get(self, request: GenerationRequest) -> str | None:
        return self._entries.get((self._prompt_key(request.prompt), request.sample_index))

    def __contains__(self, request: GenerationRequest) -> bool:
        return self.get(request) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def put_many(self, requests: Sequence[GenerationRequest], completions: Sequence[str]) -> None:
        """Store completions and append them to the file (flushed, so they survive an interruption)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        torn = _ends_without_newline(self.path)
        with open(self.path, "a", encoding="utf-8") as handle:
            if torn:  # end the line an interrupted write left, or the first new line would be glued to it
                handle.write("\n")
            for request, completion in zip(requests, completions):
                key = self._prompt_key(request.prompt)
                self._entries[(key, request.sample_index)] = completion
                row = {"key": key, "sample_index": request.sample_index, "completion": completion}
                handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _ends_without_newline(path: str) -> bool:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def generate_completions(
    requests: Sequence[GenerationRequest],
    backend: GenerationBackend,
    cache: CompletionCache | None = None,
    batch_size: int = 8,
    stop_sequences: Sequence[str] = (),
    desc: str = "generating",
) -> list[str]:
    """One completion per request, in order: cached ones are reused, the rest generated batch by batch.

    The batches are cut from all of ``requests`` (sorted by prompt length), not from the missing ones: a batch
    is generated when it holds a missing request, whole, so that a resumed run pads and computes each request
    exactly as an uninterrupted run did; only its missing completions are stored. Every completion is cut at
    ``stop_sequences`` (backends may stop early, but not all can stop exactly).
    """
    ordered = sorted(dict.fromkeys(requests), key=lambda r: (len(r.prompt), r.prompt, r.sample_index))
    # Similar prompt lengths in one batch waste less padding.
    batches = [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
    if cache is not None:
        batches = [b for b in batches if any(r not in cache for r in b)]
    fresh: dict[GenerationRequest, str] = {}
    total = sum(len(b) for b in batches)
    with tqdm(total=total, desc=desc, unit="completion", disable=not batches) as bar:
        for batch in batches:
            outputs = backend.generate(batch)
            if len(outputs) != len(batch):
                raise RuntimeError(
                    f"{type(backend).__name__}.generate returned {len(outputs)} completions for {len(batch)} requests"
                )
            new = [(r, truncate_at_stop(text, stop_sequences)) for r, text in zip(batch, outputs)
                   if cache is None or r not in cache]
            if cache is not None:
                cache.put_many([r for r, _ in new], [text for _, text in new])
            fresh.update(new)
            bar.update(len(batch))
    return [fresh[r] if r in fresh else _cached(cache, r) for r in requests]


def _cached(cache: CompletionCache | None, request: GenerationRequest) -> str:
    """The completion of a request no batch generated: only batches holding a missing request ran."""
    text = cache.get(request) if cache is not None else None
    if text is None:
        raise RuntimeError(f"request {request.sample_index} of prompt {request.prompt[:60]!r}: neither generated "
                           "nor cached")
    return text


# ---------------------------------------------------------------------------------------------- backends


class ScriptedBackend:
    """Returns given completions: for tests, and to score completions produced elsewhere.

    Args:
        completions: ``{prompt: [completion of sample 0, sample 1, ...]}`` (indices beyond the list reuse its
            last entry), or a function ``(prompt, sample_index) -> completion``.
        default: the completion for prompts not in the mapping; ``None`` makes them an error.
        scorer: ``(prompt, answer) -> log-likelihood`` for :meth:`score` (``--task detect``); ``None``: no scoring.
    """

    def __init__(
        self,
        completions: Mapping[str, Sequence[str]] | Callable[[str, int], str],
        default: str | None = None,
        scorer: Callable[[str, str], float] | None = None,
    ):
        self.completions = completions
        self.default = default
        self.scorer = scorer
        self.calls: list[list[GenerationRequest]] = []  # what was asked, batch by batch

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        self.calls.append(list(requests))
        out = []
        for request in requests:
            if callable(self.completions):
                out.append(self.completions(request.prompt, request.sample_index))
                continue
            options = self.completions.get(request.prompt)
            if options:
                out.append(options[min(request.sample_index, len(options) - 1)])
            elif self.default is not None:
                out.append(self.default)
            else:
                raise KeyError(f"ScriptedBackend has no completion for the prompt {request.prompt[-80:]!r}")
        return out


    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """The scripted log-likelihood of each answer after its prompt (``--task detect``): ``scorer(prompt,
        answer)``."""
        if self.scorer is None:
            raise ValueError("this ScriptedBackend has no scorer: pass scorer=(prompt, answer) -> log-likelihood")
        return [float(self.scorer(p, a)) for p, a in zip(prompts, answers)]


class SeededSampler:
    """A logits processor that samples each row's next token with the row's own random stream.

    ``model.generate`` samples from one global random stream, so a sample depends on every sample drawn before it
    in the process (which batches came first, and what an interrupted run already did). This processor draws
    row ``i``'s token with a generator seeded by ``seeds[i]``: temperature, then nucleus (``top_p``) filtering,
    then inverse-CDF sampling with one uniform number per step from that generator; it returns scores that are
    ``-inf`` except at the drawn token, for ``generate(do_sample=False)`` to pick. The uniform numbers come from
    CPU generators, so the draws do not depend on the device. Only ``temperature`` and ``top_p`` shape the
    distribution (a model's ``generation_config`` top-k is not applied; its non-sampling processors, such as a
    repetition penalty, still run before this one).

    Args:
        seeds: one seed per row of the batch, in order (:func:`request_seed`).
        temperature: > 0.
        top_p: nucleus threshold in (0, 1]: the most likely tokens whose mass reaches it are kept (at least one).
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        import torch

        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids, scores):
        import torch

        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"SeededSampler has {len(self.generators)} seeds for a batch of {scores.shape[0]} rows")
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        # Nucleus: keep a token while the mass of the more likely ones is below top_p (the first always stays).
        kept = sorted_probs * ((sorted_probs.cumsum(-1) - sorted_probs) < self.top_p)
        cdf = kept.cumsum(-1)
        uniform = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])
        targets = (uniform.to(cdf.device, cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
        index = torch.searchsorted(cdf, targets).clamp(max=cdf.shape[-1] - 1)
        chosen = order.gather(-1, index)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, chosen, 0.0)


class _VocabText:
    """Each token's text, indexed to find the tokens that spell a start of a text or extend it (for ForcedPrefix).

    Only for tokenizers whose tokens' texts, concatenated, are the decoded text (byte-level BPE: GPT-2, Llama 3,
    Qwen, DeepSeek-Coder); :meth:`for_tokenizer` returns None for others (SentencePiece drops a token's leading
    space when it is decoded alone). Tokens that decode to nothing (special tokens) or to part of a character are
    never offered.
    """

    _PROBE = "def f(x, y):\n    if x >= 10:\n\t\treturn [y, 'a b']\n\n    return None  # x\n"

    def __init__(self, texts: Sequence[str]):
        # "" for a token never offered; by_text and sorted_texts find the tokens of a text and those extending it
        self.texts = [t if t and "\ufffd" not in t else "" for t in texts]
        self.by_text: dict[str, list[int]] = {}
        for token, text in enumerate(self.texts):
            if text:
                self.by_text.setdefault(text, []).append(token)
        self.sorted_texts = sorted(self.by_text)
        self.allowed: dict[str, list[int]] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer) -> _VocabText | None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
        probe = tokenizer(cls._PROBE, add_special_tokens=False)["input_ids"]
        if "".join(texts[i] for i in probe) != tokenizer.decode(probe, skip_special_tokens=True):
            return None
        return cls(texts)

    def spells(self, text: str, tokenizer) -> bool:
        """Whether offered tokens can write ``text`` (one way: the tokenizer's own tokens of it)."""
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return "".join(self.texts[i] for i in ids) == text

    def written(self, tokens: Sequence[int]) -> str:
        return "".join(self.texts[t] for t in tokens)

    def tokens_towards(self, remaining: str) -> list[int]:
        """Tokens whose text is a start of ``remaining`` or starts with it (cached per text)."""
        if remaining not in self.allowed:
            found = [t for k in range(1, len(remaining) + 1) for t in self.by_text.get(remaining[:k], ())]
            start = bisect.bisect_left(self.sorted_texts, remaining)
            for text in self.sorted_texts[start:]:
                if not text.startswith(remaining):
                    break
                if text != remaining:  # (counted above)
                    found.extend(self.by_text[text])
            self.allowed[remaining] = found
        return self.allowed[remaining]


class ForcedPrefix:
    """A logits processor that makes row ``i`` write ``texts[i]`` first, in whatever tokens the model prefers.

    At each step only tokens whose text is a start of what is left to write, or that write all of it and more, keep
    their scores; the others get ``-inf`` (so EOS waits too). Once a row has written its text, it is left alone.
    Token healing (:func:`~procure_trl.dataset.prompt_format.aligned_input`): a cut prompt's last tokens are left
    out of the input and written again, so that the model may write across the cut the tokens it trained on.

    Args:
        texts: per row, the text to write first (``""``: none).
        vocab: the tokenizer's token texts (:class:`_VocabText`).
        width: the prompts' width in the batch (where the generated tokens start).
    """

    def __init__(self, texts: Sequence[str], vocab: _VocabText, width: int):
        self.texts, self.vocab, self.width = list(texts), vocab, width
        # rows that have written their text (tokens are only ever appended): not looked at again
        self.done = [not text for text in self.texts]

    def __call__(self, input_ids, scores):
        for row, text in enumerate(self.texts):
            if self.done[row]:
                continue
            written = self.vocab.written(input_ids[row, self.width:].tolist())
            if len(written) >= len(text):
                self.done[row] = True
                continue
            allowed = self.vocab.tokens_towards(text[len(written):])
            if not allowed:  # (cannot happen for the ASCII texts the backend forces: every character is a token)
                continue
            keep = scores[row, allowed]
            scores[row] = float("-inf")
            scores[row, allowed] = keep
        return scores


class TransformersBackend:
    """Batched sampling with ``model.generate``: prompts rendered in their format, left padding, stop strings,
    optional PEFT adapter.

    With ``temperature > 0`` every request is sampled with its own seed (:class:`SeededSampler`,
    :func:`request_seed`): its completion does not depend on the other requests of its batch or on what the
    process generated before.

    Args:
        model: a causal LM (already on its device).
        tokenizer: its tokenizer; padding is switched to the left (generation continues from the right end)
            and a missing pad token falls back to EOS.
        config: sampling settings (``temperature``, ``top_p``, ``max_new_tokens``, ``stop_sequences``).
    """

    def __init__(self, model, tokenizer, config: EvaluationConfig):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_pretrained(cls, config: EvaluationConfig) -> TransformersBackend:
        """The backend over ``config.model`` (with ``config.adapter`` on top when given); a model or adapter that
        cannot be loaded is a :class:`~procure_trl.errors.UserError`."""
        model, tokenizer = config.load()  # the ModelArguments block: model, adapter, dtype, device, 4-bit
        return cls(model, tokenizer, config)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        import torch
        from transformers import LogitsProcessorList

        rows, forced = zip(*(self._input(r) for r in requests))
        batch = self._pad(rows)
        width = batch["input_ids"].shape[1]
        kwargs: dict[str, Any] = {"do_sample": False, "max_new_tokens": self.config.max_new_tokens}
        processors: list[Any] = []
        vocab = self._vocab() if any(forced) else None  # (a forced text implies a vocabulary: see _input)
        if vocab is not None:  # ahead of the sampler: it samples among the tokens left
            processors.append(ForcedPrefix(forced, vocab, width))
        if self.config.temperature > 0:
            # Greedy search over one-hot scores: each row samples from a random stream of its own (SeededSampler).
            processors.append(SeededSampler([request_seed(self.config.seed, r) for r in requests],
                                            self.config.temperature, self.config.top_p))
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        if self.config.stop_sequences:
            kwargs.update(stop_strings=list(self.config.stop_sequences), tokenizer=self.tokenizer)
        with torch.inference_mode():
            output = self.model.generate(**batch, pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        completions = []
        for row, prompt_ids, mask, text in zip(output, batch["input_ids"], batch["attention_mask"], forced):
            # Left padding: the mask, not the pad id (which may equal EOS), tells the prompt's real tokens.
            real_prompt = prompt_ids[mask.bool()].tolist()
            completions.append(_after_forced(text, self._decode_completion(real_prompt, row[width:].tolist())))
        return completions

    def _input(self, request: GenerationRequest) -> tuple[list[int], str]:
        """The ids the model reads for a request and the text it writes first
        (:func:`~procure_trl.dataset.prompt_format.aligned_input`): a cut is healed where the tokenizer's tokens can
        write its tail again (:class:`_VocabText`), else read unhealed (in its trained segments)."""
        from procure_trl.dataset.prompt_format import aligned_input

        ids, tail = aligned_input(self.tokenizer, request.prompt, request.head)
        vocab = self._vocab() if tail else None
        # ASCII only: every prefix of an ASCII text can be written on (byte-level BPE has each character as a token),
        # which a text with a character that only merged tokens spell cannot promise.
        if tail and (vocab is None or not tail.isascii() or not vocab.spells(tail, self.tokenizer)):
            ids, tail = aligned_input(self.tokenizer, request.prompt, request.head, heal=False)
        return ids, tail

    def _vocab(self) -> _VocabText | None:
        if not hasattr(self, "_vocab_text"):  # built at the first cut prompt: a pass over the whole vocabulary
            self._vocab_text = _VocabText.for_tokenizer(self.tokenizer)
            if self._vocab_text is None:
                logger.info("%s: its tokens' texts do not spell the decoded text, so cut prompts are read without "
                            "token healing", getattr(self.tokenizer, "name_or_path", "the tokenizer"))
        return self._vocab_text

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """Log-likelihood of each answer after its prompt (``--task detect``)."""
        from procure_trl.evaluation.downstream import score_answers

        return score_answers(self.model, self.tokenizer, prompts, answers)

    def _pad(self, rows: Sequence[list[int]]) -> dict[str, Any]:
        """Left-padded ``input_ids`` and ``attention_mask`` of token rows."""
        import torch

        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        ids = [[pad] * (width - len(row)) + row for row in rows]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
        device = self.model.device
        return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device)}

    def _decode_completion(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """The text the new tokens add to the prompt.

        Decoding the new tokens alone can drop a leading space (SentencePiece) or split a multi-byte
        character, so the prompt is decoded with and without them and the difference is taken.
        """
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        kept = []
        for token in new_ids:
            if token == eos or token == pad:
                break
            kept.append(token)
        prefix = self.tokenizer.decode(prompt_ids, skip_special_tokens=True)
        full = self.tokenizer.decode(prompt_ids + kept, skip_special_tokens=True)
        if full.startswith(prefix):
            return full[len(prefix) :]
        return self.tokenizer.decode(kept, skip_special_tokens=True)


def _after_forced(forced: str, text: str) -> str:
    """The completion after the prompt's program start, from the text generated after the healed input: that text
    starts with the forced tail (or is part of it, when the tokens ran out first)."""
    if text.startswith(forced):
        return text[len(forced):]
    if forced.startswith(text):
        return ""
    raise RuntimeError(f"generation was to start with {forced!r} but wrote {text[:80]!r}")


class VLLMBackend:
    """Sampling with vLLM (``pip install vllm``; needs a GPU). A PEFT adapter is served as a LoRA request."""

    def __init__(self, config: EvaluationConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the vLLM backend needs `pip install vllm` (or use --backend transformers)") from exc
        self.config = config
        self._sampling_params = SamplingParams
        self.llm = LLM(
            model=config.model,
            dtype=config.dtype,
            seed=config.seed,
            enable_lora=config.adapter is not None,
            trust_remote_code=config.trust_remote_code,
        )
        self.lora = None
        if config.adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, config.adapter)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:  # pragma: no cover - needs a GPU
        # One seed per request (vLLM's per-request seed): a sample does not depend on its batch.
        params = [
            self._sampling_params(
                n=1,
                temperature=self.config.temperature,
                top_p=self.config.top_p if self.config.temperature > 0 else 1.0,
                max_tokens=self.config.max_new_tokens,
                stop=list(self.config.stop_sequences),
                seed=request_seed(self.config.seed, r),
            )
            for r in requests
        ]
        from procure_trl.dataset.prompt_format import aligned_input

        # Cut prompts keep their trained segments, but are not healed (no per-request logits processor here).
        tokenizer = self.llm.get_tokenizer()
        inputs = [{"prompt_token_ids": aligned_input(tokenizer, r.prompt, r.head, heal=False)[0]} for r in requests]
        outputs = self.llm.generate(inputs, params, lora_request=self.lora, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


def _vllm_usable() -> bool:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def build_backend(config: EvaluationConfig) -> GenerationBackend:
    """The backend ``config.backend`` names (``auto``: vLLM when installed with a GPU, else transformers;
    transformers with ``load_in_4bit``)."""
    if config.backend == "vllm" or (config.backend == "auto" and not config.load_in_4bit and _vllm_usable()):
        return VLLMBackend(config)
    return TransformersBackend.from_pretrained(config)
