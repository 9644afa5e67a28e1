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
"""


@dataclass
class ExperimentArguments:
    r"""The options of ``procure experiment``.

    Parameters:
        config (`str`):
            The experiment's YAML file, e.g. `experiments/ablation.yaml`.
        smoke (`bool`, defaults to `False`):
            Run the experiment's smoke version: a tiny local model, a few steps and a few problems, into
            `<output_dir>-smoke` (a check of the whole pipeline on a CPU in minutes, not a result).
        output_dir (`str`, *optional*):
            Replaces the YAML file's `output_dir`.
    """

    config: str = field(metadata={"help": "the experiment's YAML file, or the name of a shipped one (ablation, "
                                          "lambda_sweep, generalization, ...)"})
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


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from procure_trl.experiments import load_experiment, run_experiment

    options = ExperimentArguments(**config_kwargs(ExperimentArguments, args))
    experiment = load_experiment(resolve_config("experiments", options.config))
    if options.output_dir:
        experiment = dataclasses.replace(experiment, output_dir=options.output_dir)
    if options.smoke:
        experiment = experiment.smoke_version()
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
