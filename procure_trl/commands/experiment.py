"""``procure experiment --config experiments/<name>.yaml [--smoke]``: training variants x seeds, trained, evaluated
on held-out tasks and compared in one table.

Every option is a field of :class:`ExperimentArguments`; the experiment itself is the YAML file
(:class:`~procure_trl.experiments.config.ExperimentConfig`, see docs/experiments.md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.configs import resolve_config

_EPILOG = """\
evaluation runs the models' programs, so it refuses to start unless HF_ALLOW_CODE_EVAL=1 is set
(docs/execution.md). A rerun skips every finished run; a failed run does not stop the others, and the
command exits with status 1 when any failed.

examples:
  HF_ALLOW_CODE_EVAL=1 procure experiment --config experiments/ablation.yaml --smoke   # tiny model, CPU, minutes
  HF_ALLOW_CODE_EVAL=1 procure experiment --config experiments/lambda_sweep.yaml
  procure experiment --plan experiments/paper.yaml       # rows per concept and benchmark, detectable differences
"""


@dataclass
class ExperimentArguments:
    r"""The options of ``procure experiment``.

    Parameters:
        config (`str`, *optional*):
            The experiment's YAML file, e.g. `experiments/ablation.yaml`.
        plan (`str`, *optional*):
            Print the design of this experiment YAML file instead of running it: rows per concept and benchmark
            of its eval split (the dataset is built first when the experiment builds it) and the smallest pass@1
            and CCS differences it detects with 80 % power.
        smoke (`bool`, defaults to `False`):
            Run the experiment's smoke version: a tiny local model, a few steps and a few problems, into
            `<output_dir>-smoke` (a check of the whole pipeline on a CPU in minutes, not a result).
        output_dir (`str`, *optional*):
            Replaces the YAML file's `output_dir`.
    """

    config: str | None = field(default=None, metadata={
        "help": "the experiment's YAML file, or the name of a shipped one (ablation, lambda_sweep, paper, ...)"})
    plan: str | None = field(default=None, metadata={
        "help": "print the design of this experiment (rows per concept and benchmark of its eval split, smallest "
                "differences detected with 80 %% power) instead of running it"})
    smoke: bool = field(
        default=False,
        metadata={"help": "tiny local model, few steps, few problems, into OUTPUT-smoke: checks the whole pipeline "
                          "on a CPU in minutes"},
    )
    output_dir: str | None = field(default=None, metadata={"help": "replaces the YAML file's output_dir"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, ExperimentArguments)


def interrupted_hint(args: argparse.Namespace, error: BaseException) -> str:
    """What an interrupted experiment keeps (see :func:`procure_trl.cli.run_reporting_errors`)."""
    return "finished runs are kept (status.json in each run's folder); rerun the same command to continue"


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from procure_trl.errors import UserError
    from procure_trl.experiments import load_experiment, run_experiment

    options = ExperimentArguments(**config_kwargs(ExperimentArguments, args))
    if (options.config is None) == (options.plan is None):
        raise UserError("give --config FILE to run an experiment, or --plan FILE to print its design (one of them)")
    path = options.config or options.plan
    assert path is not None  # exactly one of them, checked above
    experiment = load_experiment(resolve_config("experiments", path))
    if options.output_dir:
        experiment = dataclasses.replace(experiment, output_dir=options.output_dir)
    if options.smoke:
        experiment = experiment.smoke_version()
    if options.plan:
        from procure_trl.experiments.design import plan_experiment, plan_markdown

        print(plan_markdown(plan_experiment(experiment)), end="")
        return 0
    result = run_experiment(experiment, smoke=options.smoke)
    with open(result.files["table"], encoding="utf-8") as handle:
        print(handle.read())
    for name, path in result.files.items():
        print(f"{name}: {path}")
    if result.failed:
        print(f"{len(result.failed)} of {len(result.outcomes)} runs failed (listed above); rerun to retry them",
              flush=True)
        return 1
    return 0
