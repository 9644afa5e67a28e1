"""The ``--generator llm`` options of ``procure perturb``.

:mod:`procure_trl.commands.perturb` owns the subcommand; it calls :func:`add_arguments` to add the
options below and, for the LLM generator, :func:`run` with the loaded problems and the parsed concepts.
This module only turns arguments into an :class:`~procure_trl.llm.generator.LLMGeneratorConfig` and
calls the library; everything it does, Python code can do too. It imports nothing heavy (``openai`` is
imported only when the LLM generator runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from procure_trl.concepts import Concept
from procure_trl.problems import InvalidProblem, Problem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the LLM generator's options to the ``perturb`` parser (all optional unless ``--generator llm``)."""
    group = parser.add_argument_group("LLM generator (--generator llm)")
    group.add_argument("--model", default=None, help="model name sent to the chat-completions endpoint")
    group.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vLLM or "
        "http://localhost:11434/v1 for Ollama (default: the openai package's default / $OPENAI_BASE_URL)",
    )
    group.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable that holds the API key (default: OPENAI_API_KEY)",
    )
    group.add_argument("--max-concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
    group.add_argument(
        "--repair-rounds",
        type=int,
        default=3,
        help="times a rejected candidate is sent back with the validation error (default: 3)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --output and generate only the missing (problem, concept) pairs",
    )
    group.add_argument(
        "--request-timeout", type=float, default=120.0, help="seconds per HTTP request (default: 120)"
    )
    group.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="retries of one request on 429 / 5xx / timeouts / dropped connections (default: 5)",
    )
    group.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0, as in the paper)"
    )
    group.add_argument("--max-tokens", type=int, default=2048, help="completion token limit per request")
    group.add_argument(
        "--cache-dir",
        default=None,
        help="persistent response cache (default: $PROCURE_LLM_CACHE or ~/.cache/procure_trl/llm); "
        "a rerun with the same model, messages and parameters sends no request",
    )
    group.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    group.add_argument(
        "--allow-endpoint-errors",
        action="store_true",
        help="exit 0 even when some pairs got no answer after all retries (their rows have stage 'endpoint'; "
        "by default the run exits 1 and --resume asks them again)",
    )
    group.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="MODEL=IN,OUT",
        help="USD per 1M prompt,completion tokens for a model, for the cost estimate (repeatable)",
    )


def options_set(args: argparse.Namespace) -> list[str]:
    """The LLM options that ``args`` sets to something other than their default (as ``--flag`` strings).

    ``procure perturb --generator rule`` uses it to refuse LLM options instead of silently ignoring them.
    """
    reference = argparse.ArgumentParser(add_help=False)
    add_arguments(reference)
    defaults = vars(reference.parse_args([]))
    return ["--" + dest.replace("_", "-") for dest, default in defaults.items() if getattr(args, dest, default) != default]


def config_from_args(args: argparse.Namespace):
    """Build the generator configuration from parsed arguments; raises ``ValueError`` on bad values."""
    from procure_trl.llm.generator import LLMGeneratorConfig, parse_price
    from procure_trl.validation import ValidationConfig

    if not getattr(args, "model", None):
        raise ValueError("--generator llm needs --model NAME (the model name the endpoint serves)")
    prices = dict(parse_price(p) for p in getattr(args, "price", []) or [])
    kwargs = dict(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        max_concurrency=args.max_concurrency,
        repair_rounds=args.repair_rounds,
        request_timeout=args.request_timeout,
        max_retries=args.max_retries,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        cache_dir=None if args.no_cache else args.cache_dir,
        allow_endpoint_errors=args.allow_endpoint_errors,
        use_cache=not args.no_cache,
        seed=getattr(args, "seed", 0),
        # perturb's shared options: validation settings and progress bars mean the same for both engines
        validate=getattr(args, "validate", True),
        show_progress=getattr(args, "progress", True),
        validation=ValidationConfig(
            timeout=getattr(args, "timeout", 10.0), num_workers=getattr(args, "workers", 2)
        ),
    )
    if prices:
        kwargs["prices"] = prices
    return LLMGeneratorConfig(**kwargs)


def run(args: argparse.Namespace, problems: Sequence[Problem | InvalidProblem], concepts: Sequence[Concept]) -> int:
    """Generate counterfactuals with the LLM, append them to ``args.output``, print the summary; exit status."""
    from procure_trl.llm.client import LLMFatalError
    from procure_trl.llm.generator import LLMConfigError, LLMGenerator, format_llm_summary

    output = getattr(args, "output", None)
    if not output:
        print("procure perturb: error: --generator llm needs --output PATH (JSONL; see --resume)", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
        generator = LLMGenerator(config)
        report = generator.generate_to_jsonl(problems, concepts, Path(output), resume=args.resume)
    except (LLMConfigError, ValueError, FileExistsError) as err:
        print(f"procure perturb: error: {err}", file=sys.stderr)
        return 2
    except LLMFatalError as err:
        kept = f"; the rows written so far stay in {output} (rerun with --resume)" if _has_rows(output) else ""
        print(f"procure perturb: error: {err}{kept}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nprocure perturb: interrupted; the finished rows are in {output}: rerun with --resume to "
              "complete it (answers received so far come from the cache).", file=sys.stderr)
        return 130
    print(format_llm_summary(report))
    print(f"wrote {len(report.rows)} lines to {output}")
    if report.endpoint_errors and not config.allow_endpoint_errors:
        print(f"procure perturb: error: {report.endpoint_errors} pair(s) got no answer from the endpoint after all "
              f"retries; rerun with --resume to ask again (or pass --allow-endpoint-errors)", file=sys.stderr)
        return 1
    return 0


def _has_rows(path: str) -> bool:
    try:
        return Path(path).stat().st_size > 0
    except OSError:
        return False
