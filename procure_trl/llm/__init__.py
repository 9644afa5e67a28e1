"""LLM-guided counterfactual generation through any OpenAI-compatible chat endpoint.

* :mod:`.prompts`    concept-guided one-shot chain-of-thought prompts, answer parsing
* :mod:`.client`     async client: bounded concurrency, retries with backoff, timeouts, cache
* :mod:`.cache`      persistent on-disk response cache with atomic writes
* :mod:`.spans`      changed character spans from a diff against the original
* :mod:`.output`     append-only, resumable JSONL output
* :mod:`.generator`  the generate -> validate -> repair loop (:class:`LLMGenerator`)
* :mod:`.cli`        glue for ``procure perturb --generator llm``
"""

from __future__ import annotations

from procure_trl.llm.generator import LLMGenerator, LLMGeneratorConfig, format_llm_summary
from procure_trl.llm.prompts import build_messages

__all__ = ["LLMGenerator", "LLMGeneratorConfig", "build_messages", "format_llm_summary"]
