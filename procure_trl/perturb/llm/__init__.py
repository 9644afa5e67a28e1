"""LLM-guided counterfactual generation through any OpenAI-compatible chat endpoint.

* :mod:`.prompts`    concept-guided one-shot chain-of-thought prompts, answer parsing
* :mod:`.client`     async client: bounded concurrency, retries with backoff, timeouts, cache
* :mod:`.cache`      persistent on-disk response cache with atomic writes
* :mod:`.spans`      changed character spans from a diff against the original
* :mod:`.generator`  the generate -> validate -> repair loop (:class:`LLMGenerator`)

Rows are :class:`procure_trl.perturb.records.CounterfactualRecord`, written by its append-only writer; the
options of ``procure perturb --generator llm`` live in :mod:`procure_trl.commands.perturb_llm`.
Names are imported lazily: the rule-based path must not pay for importing ``openai`` (seconds on a
cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from procure_trl._lazy import lazy_exports

_EXPORTS = {
    "LLMGenerator": "procure_trl.perturb.llm.generator",
    "LLMGeneratorConfig": "procure_trl.perturb.llm.generator",
    "LLMConfigError": "procure_trl.perturb.llm.generator",
    "GenerationReport": "procure_trl.perturb.llm.generator",
    "format_llm_summary": "procure_trl.perturb.llm.generator",
    "LLMFatalError": "procure_trl.perturb.llm.client",
    "LLMRequestError": "procure_trl.perturb.llm.client",
    "build_messages": "procure_trl.perturb.llm.prompts",
    "extract_code": "procure_trl.perturb.llm.prompts",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from procure_trl.perturb.llm.client import LLMFatalError, LLMRequestError
    from procure_trl.perturb.llm.generator import (
        GenerationReport,
        LLMConfigError,
        LLMGenerator,
        LLMGeneratorConfig,
        format_llm_summary,
    )
    from procure_trl.perturb.llm.prompts import build_messages, extract_code
