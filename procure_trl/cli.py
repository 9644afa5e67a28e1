"""The ``procure`` command: thin argument parsing over the library.

Each subcommand lives in ``procure_trl/commands/<name>.py`` (hyphens become underscores) and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
subcommand runs, so ``procure perturb`` never pays for importing torch or transformers.

Errors: a :class:`~procure_trl.errors.UserError` raised anywhere below a command is printed as one
line (``procure <command>: error: ...``) with exit code 2; ``--debug`` (or ``PROCURE_DEBUG=1``)
shows the traceback instead. :func:`run_reporting_errors` gives other entry points (the dataset
builder script) the same behaviour.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from procure_trl.commands.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
from procure_trl.commands.options import CommandParser
from procure_trl.errors import UserError, print_error

#: subcommand -> one-line help. The module ``procure_trl.commands.<subcommand>`` implements it.
SUBCOMMANDS = {
    "perturb": "generate and validate counterfactual programs (rule-based or LLM-guided)",
    "mutate": "near-miss mutant pairs (bugs) at the concept's sites of valid counterfactuals, "
              "kept when the tests kill them",
    "build": "build the counterfactual dataset (Parquet + card) from engine output, optionally on the Hub",
    "train": "fine-tune with ConceptAwareSFTTrainer from a YAML recipe",
    "evaluate": "pass@k and the Concept Consistency Score of a model on a benchmark",
    "compare": "evaluation runs side by side: pass@k and CCS with intervals, paired differences",
    "experiment": "train and evaluate variants x seeds of an experiment (ablation, lambda sweep, ...) into one table",
    "publish-metrics": "publish the pass_at_k and ccs metric modules as Spaces on the Hub",
    "attention-report": "per layer, the attention mass on perturbed tokens beside a control (base vs adapter)",
}


#: subcommands whose unknown flags are forwarded to the library (TRL's argument parser) as overrides
_ACCEPTS_OVERRIDES = frozenset({"train"})


def _command_module(name: str):
    return importlib.import_module(f"procure_trl.commands.{name.replace('-', '_')}")


def _version() -> str:
    from procure_trl import __version__

    return __version__


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="procure",
        description="ProCURE: concept-aware fine-tuning of code LLMs with counterfactual programs.",
    )
    parser.add_argument("--version", action="version", version=f"procure_trl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen subcommand's module is imported; the others get a stub parser for --help.
    chosen = next((a for a in (argv or []) if a in SUBCOMMANDS), None)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
        if name == chosen:
            _command_module(name).add_arguments(p)
            parser.chosen_subparser = p
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``procure`` arguments; unknown flags go to ``args.overrides`` for subcommands that take them."""
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    # `procure train --config r.yaml --max_steps 10`: TRL-style overrides of the recipe pass through;
    # every other subcommand rejects unknown flags as argparse would.
    if extra and args.command not in _ACCEPTS_OVERRIDES:
        getattr(parser, "chosen_subparser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(getattr(args, "overrides", None) or []) + extra
    return args


def run_reporting_errors(prog: str, function: Callable[[], int | None], *, debug: bool = False,
                         interrupted: Callable[[BaseException], str] | None = None) -> int:
    """Call ``function``; a :class:`UserError` becomes one line on stderr and exit code 2 (unless ``debug``).

    ^C or SIGTERM (:func:`~procure_trl.commands.interrupts.sigterm_as_interrupt`) becomes one line, ``interrupted: ``
    followed by what ``interrupted(error)`` says was kept and how to continue, and exit code 130.
    """
    try:
        with sigterm_as_interrupt():
            return int(function() or 0)
    except KeyboardInterrupt as err:
        if debug or os.environ.get("PROCURE_DEBUG", "") not in ("", "0"):
            raise
        hint = interrupted(err) if interrupted is not None else ""
        print(f"{prog}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return INTERRUPTED_EXIT
    except UserError as err:
        if debug or os.environ.get("PROCURE_DEBUG", "") not in ("", "0"):
            raise
        print_error(prog, str(err))
        return 2


def main(argv: list[str] | None = None) -> int:
    from procure_trl.commands.quiet import silence_known_library_messages

    silence_known_library_messages()  # before any command imports bitsandbytes, peft or TRL
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    module = _command_module(args.command)
    hint = getattr(module, "interrupted_hint", None)
    return run_reporting_errors(f"procure {args.command}", lambda: module.run(args), debug=args.debug,
                                interrupted=(lambda err: hint(args, err)) if hint else None)


if __name__ == "__main__":
    sys.exit(main())
