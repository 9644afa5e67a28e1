"""``procure evaluate``: pass@k and the Concept Consistency Score of a model on a benchmark.

Every option is a field of :class:`~procure_trl.evaluation.config.EvaluationConfig` (help and default included).
"""

from __future__ import annotations

import argparse

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError
from procure_trl.evaluation.config import EvaluationConfig

_EPILOG = """\
code execution: the benchmark's tests run the model's completions, so evaluation refuses to start
unless HF_ALLOW_CODE_EVAL=1 is set (read docs/execution.md first: programs run in a sandboxed
subprocess with a timeout, which limits but does not remove the risk of running untrusted code).

example:
  HF_ALLOW_CODE_EVAL=1 procure evaluate --model Qwen/Qwen2.5-Coder-1.5B-Instruct --adapter outputs/procure-qlora \\
      --dataset outputs/procure-counterfactuals --split test --output-dir outputs/eval-procure
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, EvaluationConfig, required=("output_dir",))


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    try:
        return EvaluationConfig(**config_kwargs(EvaluationConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err


def interrupted_hint(args: argparse.Namespace, error: BaseException) -> str:
    """What an interrupted evaluation keeps (see :func:`procure_trl.cli.run_reporting_errors`)."""
    return ("the completions sampled so far are kept in the completion cache (unless --no-cache); "
            "rerun the same command to continue")


def run(args: argparse.Namespace) -> int:
    from procure_trl.evaluation.report import markdown_summary
    from procure_trl.evaluation.run import evaluate_model

    config = config_from_args(args)
    report = evaluate_model(config)  # raises UserError for bad input; a bug keeps its traceback
    from procure_trl.evaluation.results import EvaluationReport

    print(markdown_summary(report) if isinstance(report, EvaluationReport) else report.summary())
    print(f"report: {report.files['report']}")
    return 0
