"""Settings of the LLM generator, in a module that imports no ``openai`` (``procure perturb --help`` is instant)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from procure_trl.errors import UserError
from procure_trl.validation import ValidationConfig

__all__ = ["DEFAULT_PRICES", "LLMConfigError", "LLMGeneratorConfig", "parse_price"]


#: USD per one million (prompt, completion) tokens: public list prices of a few hosted models, mid 2025.
#: Extend or override with ``LLMGeneratorConfig.prices`` / ``--price MODEL=IN,OUT``; a model missing here
#: gets a usage report without a cost.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


class LLMConfigError(UserError):
    """The configuration cannot work (missing API key, bad value): the message says what to change."""


@dataclass
class LLMGeneratorConfig:
    r"""Settings of the LLM generator (the ``--generator llm`` options of ``procure perturb``).

    Defaults suit a hosted endpoint; tests shrink the timeouts.

    Parameters:
        model (`str`):
            Model name the endpoint serves (e.g. `gpt-4o-mini`, or the name vLLM/Ollama serve).
        base_url (`str`, *optional*):
            Endpoint root such as `http://localhost:8000/v1`; `None`: the openai default / `$OPENAI_BASE_URL`.
        api_key (`str`, *optional*):
            The key itself; `None` reads it from the environment variable `api_key_env`.
        api_key_env (`str`, defaults to `"OPENAI_API_KEY"`):
            Environment variable holding the key. Local servers accept any value, e.g. `EMPTY`.
        temperature (`float`, defaults to `1.0`):
            Sampling temperature (1.0, as in the paper: repairs need a different answer, not the same one).
        max_tokens (`int`, *optional*, defaults to `2048`):
            Completion token limit per request; `None` sends none (some reasoning models reject `max_tokens`).
        extra_params (`dict[str, Any]`, defaults to `{}`):
            More request parameters (`top_p`, `seed`, `max_completion_tokens`...); part of the cache key.
        repair_rounds (`int`, defaults to `3`):
            How many times a rejected candidate is sent back with the validator's reason.
        max_concurrency (`int`, defaults to `8`):
            (problem, concept) pairs, hence requests, in flight at once.
        request_timeout (`float`, defaults to `120.0`):
            Seconds for one HTTP request before it counts as a timeout (and is retried).
        max_retries (`int`, defaults to `5`):
            Retries of one request on 429 / 408 / 409 / 5xx / timeouts / dropped connections / malformed bodies.
        initial_backoff (`float`, defaults to `1.0`):
            First retry delay in seconds; it doubles per retry (with jitter), capped by `max_backoff`.
        max_backoff (`float`, defaults to `60.0`):
            Longest wait before a retry, also the cap on a server's `Retry-After`.
        use_cache (`bool`, defaults to `True`):
            Read and write the persistent response cache.
        cache_dir (`str`, *optional*):
            Cache directory; `None`: `$PROCURE_LLM_CACHE` or `~/.cache/procure_trl/llm`.
        prices (`dict[str, tuple[float, float]]`, defaults to `DEFAULT_PRICES`):
            USD per 1M (prompt, completion) tokens by model name, for the cost estimate.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the retry jitter (the sampling itself is the endpoint's; the cache makes reruns identical).
        show_progress (`bool`, defaults to `True`):
            Show a tqdm progress bar over the pairs.
        skip_without_site (`bool`, defaults to `True`):
            Mark a pair `not_applicable` without a request when the static analysis finds no site for its
            concept (no if/else, no independent pair, no separable redefinition, no renameable name): the
            validator would reject any candidate for it, so asking would only cost tokens.
        validate (`bool`, defaults to `True`):
            Run the validation pipeline; `False` keeps every answer with code as `valid` (unchecked, no repair).
        validation (`ValidationConfig`, defaults to `ValidationConfig()`):
            Settings of the validation pipeline shared with the rule engine (test timeout, workers...).
        allow_endpoint_errors (`bool`, defaults to `False`):
            Count a run that ends with rows whose requests failed after all retries (stage `endpoint`) as a
            success (`procure perturb` exits 0); by default such a run exits 1 and `--resume` retries them.
    """

    model: str = field(metadata={"help": "model name sent to the chat-completions endpoint"})
    base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vLLM or "
                          "http://localhost:11434/v1 for Ollama (default: the openai package's default / "
                          "$OPENAI_BASE_URL)"},
    )
    api_key: str | None = field(
        default=None, metadata={"help": "the API key itself (Python only: keys do not go on command lines)",
                                "cli": False}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "environment variable that holds the API key"}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature (1.0, as in the paper: repairs need a new answer)"}
    )
    max_tokens: int | None = field(default=2048, metadata={"help": "completion token limit per request"})
    extra_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "more request parameters (part of the cache key)", "cli": False}
    )
    repair_rounds: int = field(
        default=3, metadata={"help": "times a rejected candidate is sent back with the validation error"}
    )
    max_concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    request_timeout: float = field(default=120.0, metadata={"help": "seconds per HTTP request"})
    max_retries: int = field(
        default=5, metadata={"help": "retries of one request on 429 / 5xx / timeouts / dropped connections"}
    )
    initial_backoff: float = field(
        default=1.0, metadata={"help": "first retry delay in seconds; it doubles per retry, up to --max-backoff"}
    )
    max_backoff: float = field(
        default=60.0, metadata={"help": "longest wait before a retry (also caps a server's Retry-After)"}
    )
    use_cache: bool = field(
        default=True, metadata={"help": "read and write the persistent response cache", "flags": "--no-cache",
                                "off_help": "neither read nor write the persistent response cache: every request "
                                            "goes to the endpoint"}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "persistent response cache (default: $PROCURE_LLM_CACHE or ~/.cache/procure_trl/llm); "
                          "a rerun with the same model, messages and parameters sends no request"},
    )
    prices: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        metadata={"help": "USD per 1M (prompt, completion) tokens by model name", "cli": False},
    )
    seed: int | None = field(default=0, metadata={"help": "seed of the retry jitter"})
    show_progress: bool = field(default=True, metadata={"help": "show a progress bar over the pairs",
                                                          "off_help": "hide the progress bar over the pairs"})
    skip_without_site: bool = field(
        default=True,
        metadata={"help": "mark a pair not_applicable without a request when the static analysis finds no site "
                          "for its concept",
                  "off_help": "send a request for every pair, also where the static analysis finds no site for "
                              "its concept"},
    )
    validate: bool = field(default=True, metadata={"help": "run the validation pipeline (and the repairs)",
                                                     "off_help": "skip the validation pipeline and the repairs: "
                                                                 "every answer is written unchecked"})
    validation: ValidationConfig = field(
        default_factory=ValidationConfig, metadata={"help": "settings of the validation pipeline", "cli": False}
    )
    allow_endpoint_errors: bool = field(
        default=False,
        metadata={"help": "exit 0 even when some pairs got no answer after all retries (their rows have stage "
                          "'endpoint'; by default the run exits 1 and --resume asks them again)"},
    )

    def __post_init__(self) -> None:
        checks = [
            (bool(self.model and self.model.strip()), "model must be a non-empty model name"),
            (self.repair_rounds >= 0, f"repair_rounds must be >= 0, got {self.repair_rounds}"),
            (self.max_concurrency >= 1, f"max_concurrency must be >= 1, got {self.max_concurrency}"),
            (self.request_timeout > 0, f"request_timeout must be > 0 seconds, got {self.request_timeout}"),
            (self.max_retries >= 0, f"max_retries must be >= 0, got {self.max_retries}"),
            (self.initial_backoff >= 0, f"initial_backoff must be >= 0, got {self.initial_backoff}"),
            (self.max_backoff >= self.initial_backoff, "max_backoff must be >= initial_backoff"),
            (0 <= self.temperature <= 2, f"temperature must be in [0, 2], got {self.temperature}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LLMConfigError(message)

    def resolve_api_key(self) -> str:
        """The API key, or :class:`LLMConfigError` naming the environment variable to set."""
        if self.api_key:
            return self.api_key
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise LLMConfigError(
                f"no API key: the environment variable {self.api_key_env} is not set. Export it "
                f"(export {self.api_key_env}=...), or name another variable with --api-key-env; "
                "local servers (vLLM, Ollama) accept any value, e.g. EMPTY"
            )
        return key

    def request_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.temperature}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        params.update(self.extra_params)
        return params


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``"MODEL=IN,OUT"`` (USD per 1M prompt, completion tokens) -> ``(MODEL, (IN, OUT))``."""
    model, sep, rest = text.partition("=")
    parts = rest.split(",")
    try:
        if not sep or not model.strip() or len(parts) != 2:
            raise ValueError
        return model.strip(), (float(parts[0]), float(parts[1]))
    except ValueError:
        raise UserError(
            f"bad --price {text!r}: expected MODEL=IN,OUT in USD per 1M prompt and completion tokens, "
            "e.g. gpt-4o-mini=0.15,0.60"
        ) from None
