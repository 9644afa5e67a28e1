"""The ``--generator llm`` options of ``procure perturb``.

:mod:`procure_trl.commands.perturb` owns the subcommand; it calls :func:`add_arguments` to add the
options below and, for the LLM generator, :func:`run` with the loaded problems and the parsed concepts.
This module only turns arguments into an :class:`~procure_trl.perturb.llm.generator.LLMGeneratorConfig` and
calls the library; everything it does, Python code can do too. It imports nothing heavy (``openai`` is
imported only when the LLM generator runs).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.concepts import AnyConcept
from procure_trl.errors import UserError, print_error
from procure_trl.perturb.records import OutputConfig
from procure_trl.problems import InvalidProblem, Problem


def _price(text: str) -> tuple[str, tuple[float, float]]:
    from procure_trl.perturb.llm.config import parse_price

    return parse_price(text)


@dataclass
class LLMCommandArguments:
    r"""The ``--generator llm`` options of ``procure perturb`` that are not fields of ``LLMGeneratorConfig``.

    Parameters:
        price (`list[tuple[str, tuple[float, float]]]`, *optional*):
            USD per one million prompt and completion tokens of a model, for the cost estimate; on the command line
            `--price MODEL=IN,OUT`, repeatable. Added to (or replacing) `LLMGeneratorConfig.prices`.
    """

    price: list[tuple[str, tuple[float, float]]] | None = field(default=None, metadata={
        "help": "USD per 1M prompt,completion tokens for a model, for the cost estimate (repeatable)",
        "repeat": True, "parse": _price, "metavar": "MODEL=IN,OUT"})


#: LLM fields set from ``perturb``'s shared options instead (``--seed``, ``--no-validate``, ``--no-progress``)
_SHARED = ("seed", "validate", "show_progress")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the LLM generator's options to the ``perturb`` parser (all optional unless ``--generator llm``)."""
    from procure_trl.perturb.llm.config import LLMGeneratorConfig

    group = parser.add_argument_group("LLM generator (--generator llm)")
    add_options(group, LLMGeneratorConfig, exclude=_SHARED, optional=("model",))
    add_options(group, LLMCommandArguments)


def options_set(args: argparse.Namespace) -> list[str]:
    """The LLM options that ``args`` sets to something other than their default (as ``--flag`` strings).

    ``procure perturb --generator rule`` uses it to refuse LLM options instead of silently ignoring them.
    """
    reference = argparse.ArgumentParser(add_help=False)
    add_arguments(reference)
    return [
        action.option_strings[0] for action in reference._actions
        if action.help != argparse.SUPPRESS and getattr(args, action.dest, action.default) != action.default
    ]


def config_from_args(args: argparse.Namespace):
    """Build the generator configuration from parsed arguments; raises ``UserError`` on bad values."""
    from procure_trl.perturb.llm.config import LLMGeneratorConfig
    from procure_trl.validation import ValidationConfig

    if not getattr(args, "model", None):
        raise UserError("--generator llm needs --model NAME (the model name the endpoint serves)")
    prices = dict(getattr(args, "price", None) or [])  # parsed (MODEL, (IN, OUT)) pairs
    kwargs = config_kwargs(LLMGeneratorConfig, args)  # its own options, and perturb's --seed / --no-validate
    # perturb's shared options: validation settings and progress bars mean the same for both engines
    kwargs["show_progress"] = args.progress
    kwargs["validation"] = ValidationConfig(timeout=args.timeout, num_workers=args.num_workers)
    if prices:
        kwargs["prices"] = prices
    return LLMGeneratorConfig(**kwargs)


def run(args: argparse.Namespace, problems: Sequence[Problem | InvalidProblem], concepts: Sequence[AnyConcept],
        output: OutputConfig) -> int:
    """Generate counterfactuals with the LLM into ``args.output``, print the summary; exit status.

    ``KeyboardInterrupt`` propagates: ``procure perturb`` reports interrupts the same for both generators.
    """
    from procure_trl.commands.perturb import report_run
    from procure_trl.perturb.llm.client import LLMFatalError
    from procure_trl.perturb.llm.generator import LLMGenerator, format_llm_summary

    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        config = config_from_args(args)
    except ValueError as err:  # LLMConfigError is a UserError already
        raise UserError(str(err)) from err
    try:
        generator = LLMGenerator(config)
        report = generator.generate_to_jsonl(problems, [c.value for c in concepts], Path(args.output),
                                             resume=output.resume, overwrite=output.overwrite)
    except LLMFatalError as err:
        kept = ""
        if _has_rows(args.output):
            kept = f"; the rows written so far stay in {args.output} (rerun with --resume)"
        print_error("procure perturb", f"{err}{kept}")
        return 1
    print(format_llm_summary(report))
    status = report_run(report.rows, args.output, output.strict)
    if report.endpoint_errors and not config.allow_endpoint_errors:
        print_error("procure perturb", f"{report.endpoint_errors} pair(s) got no answer from the endpoint after all "
                    "retries; rerun with --resume to ask again (or pass --allow-endpoint-errors)")
        return 1
    return status


def _has_rows(path: str) -> bool:
    try:
        return Path(path).stat().st_size > 0
    except OSError:
        return False
