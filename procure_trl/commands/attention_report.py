"""``procure attention-report``: per layer, the attention mass on perturbed tokens beside a matched control.

Every option is a field of :class:`~procure_trl.attention_report.AttentionReportConfig` (help and default included).
"""

from __future__ import annotations

import argparse

from procure_trl.attention_report.config import AttentionReportConfig
from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError

_EPILOG = """\
measures the attention mass m_q of the concept-aware loss: for each completion query at or after the first
perturbed token, the attention it puts on the perturbed tokens, per layer and averaged over heads; beside it,
a control with as many unperturbed tokens at the same distances from their queries.

example:
  procure attention-report --model Qwen/Qwen2.5-Coder-1.5B-Instruct --adapter outputs/procure-qlora \\
      --dataset outputs/procure-counterfactuals --split test --output-dir outputs/attention
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, AttentionReportConfig)


def run(args: argparse.Namespace) -> int:
    from procure_trl.attention_report.report import format_summary, run_attention_report

    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        config = AttentionReportConfig(**config_kwargs(AttentionReportConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    report = run_attention_report(config)
    print(format_summary(report))
    print(f"report: {report['files']['report']}\nplot: {report['files']['plot']}")
    return 0
