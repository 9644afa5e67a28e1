"""``procure build``: engine JSONL -> the counterfactual dataset (Parquet + card), optionally pushed to the Hub.

Every option is a field of :class:`~procure_trl.dataset.builder.BuildConfig` (help and default included);
``datasets_scripts/build_counterfactuals.py`` runs this same command.
"""

from __future__ import annotations

import argparse

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError

_EPILOG = """\
without --input-jsonl the builder runs the rule engine (`procure perturb`) on every benchmark first, into
OUTPUT_DIR/engine. OUTPUT_DIR/build.json records the settings and input fingerprints that built the folder: the
same command again continues an interrupted or failed build (finished engine output is kept); other settings
are refused unless --overwrite, which removes the earlier build's configs and engine output first.

examples:
  procure build --benchmarks humaneval,mbpp --output-dir outputs/procure-counterfactuals
  procure build --input-jsonl outputs/humaneval_counterfactuals.jsonl --benchmarks humaneval \\
      --output-dir outputs/procure-counterfactuals --push-to-hub --repo-id me/procure-counterfactuals
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.dataset.builder import BuildConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, BuildConfig)


def interrupted_hint(args: argparse.Namespace, error: BaseException) -> str:
    """What an interrupted build keeps (see :func:`procure_trl.cli.run_reporting_errors`)."""
    if getattr(args, "input_jsonl", None):
        return "the output folder is unfinished; rerun the same command to build it"
    return ("the engine output finished so far is kept in the output folder; rerun the same command to continue "
            "the build")


def run(args: argparse.Namespace) -> int:
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.hub import require_hub_push

    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        config = BuildConfig(**config_kwargs(BuildConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    if config.push_to_hub:
        assert config.repo_id is not None  # BuildConfig requires it with push_to_hub
        require_hub_push(config.repo_id)  # before perturbing and building, not after
    build_counterfactual_dataset(config)
    return 0
