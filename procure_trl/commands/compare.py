"""``procure compare RUN_DIR RUN_DIR [...] --output-dir DIR``: evaluation runs side by side, with paired differences.

Every option but the run folders is a field of :class:`~procure_trl.evaluation.compare.CompareConfig`.
"""

from __future__ import annotations

import argparse

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError

_EPILOG = """\
each RUN_DIR is the --output-dir folder of a finished `procure evaluate` run; the first is the baseline of the
paired differences (every other run minus the first, over the problems and rows both scored).

example:
  procure compare outputs/eval-base outputs/eval-procure --output-dir outputs/comparison
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.evaluation.compare import CompareConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, CompareConfig, required=("output_dir",))


def run(args: argparse.Namespace) -> int:
    from procure_trl.errors import require_folder_path
    from procure_trl.evaluation.compare import CompareConfig, compare_runs
    from procure_trl.evaluation.compare_report import comparison_markdown

    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        config = CompareConfig(**config_kwargs(CompareConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    require_folder_path(config.output_dir, "--output-dir")
    comparison = compare_runs(config)
    print(comparison_markdown(comparison))
    print(f"comparison: {comparison.files['report']}")
    return 0
