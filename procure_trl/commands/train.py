"""``procure train --config recipe.yaml``: concept-aware fine-tuning from a YAML recipe.

The recipe holds the fields of TRL's ``ScriptArguments`` (dataset), ``ConceptAwareSFTConfig``
(training + ProCURE loss) and TRL's ``ModelConfig`` (model, load_in_4bit, LoRA); any of them can be
overridden on the command line, e.g. ``procure train --config r.yaml --max_steps 10`` (a ``--`` before
the overrides is accepted too).
See ``examples/procure_qlora.yaml`` and ``docs/training.md``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe (see examples/procure_qlora.yaml)")
    parser.add_argument(
        "--show-options", action="store_true", help="list every recipe field (dataset, training, model) and exit"
    )
    # Recipe overrides (``--max_steps 10``) are not declared here: the ``procure`` dispatcher collects the
    # flags it does not know into ``args.overrides`` in their order, and TRL's parser checks them.
    parser.epilog = "any other --name value pair overrides that recipe field (e.g. --max_steps 10)"


def run(args: argparse.Namespace) -> int:
    from procure_trl.training.recipe import recipe_parser, run_recipe

    parser = recipe_parser()
    if args.show_options:
        parser.print_help()
        return 0
    argv = list(getattr(args, "overrides", None) or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if args.config:
        argv = ["--config", args.config, *argv]
    elif not argv:
        raise SystemExit("procure train: give a recipe with --config recipe.yaml (see examples/procure_qlora.yaml)")
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    trainer = run_recipe(script_args, training_args, model_args)
    trainer.accelerator.print(f"saved to {training_args.output_dir}")
    return 0
