"""``procure compare RUN_DIR RUN_DIR [...] --output DIR``: evaluation runs side by side, with paired differences.

Every option but the run folders is a field of :class:`~procure_trl.harness.compare.CompareConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError

_EPILOG = """\
each RUN_DIR is the --output folder of a finished `procure evaluate` run; the first is the baseline of the
paired differences (every other run minus the first, over the problems and rows both scored).

example:
  procure compare outputs/eval-base outputs/eval-procure --output outputs/comparison
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.harness.compare import CompareConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    runs = next(f for f in dataclasses.fields(CompareConfig) if f.name == "runs")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help=runs.metadata["help"])
    add_options(parser, CompareConfig, exclude=("runs",), required=("output_dir",))


def run(args: argparse.Namespace) -> int:
    from procure_trl.harness.compare import CompareConfig, compare_runs
    from procure_trl.errors import require_folder_path
    from procure_trl.harness.compare_report import comparison_markdown

    try:
        config = CompareConfig(runs=list(args.runs), **config_kwargs(CompareConfig, args, exclude=("runs",)))
        require_folder_path(config.output_dir, "--output")
        comparison = compare_runs(config)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    print(comparison_markdown(comparison))
    print(f"comparison: {comparison.files['report']}")
    return 0
