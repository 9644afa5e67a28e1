"""``procure train --config recipe.yaml``: concept-aware fine-tuning from a YAML recipe.

The recipe holds the fields of TRL's ``ScriptArguments`` (dataset), ``ConceptAwareSFTConfig``
(training + ProCURE loss) and TRL's ``ModelConfig`` (model, load_in_4bit, LoRA); any of them can be
overridden on the command line, e.g. ``procure train --config r.yaml --max_steps 10`` or ``--max-steps 10`` (a
``--`` before the overrides is accepted too). ``--help`` lists the ProCURE fields and the TRL fields set most often;
``--show-options`` lists all of them. Both read the fields from the installed sources
(:mod:`procure_trl.training.recipe_fields`), so they answer without importing torch, and so do recipe
typos: an unknown field is refused, with the closest known name, before anything is loaded.
See ``examples/procure_qlora.yaml`` and ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

from procure_trl.commands.options import flag_spellings
from procure_trl.configs import load_yaml_config, resolve_config
from procure_trl.errors import UserError, did_you_mean

_PROCURE_GROUP = "ProCURE loss (ConceptAwareSFTConfig)"
_COMMON_GROUP = "recipe fields set most often (TRL ScriptArguments, SFTConfig/TrainingArguments, ModelConfig)"
#: procure's own flags, never forwarded to TRL
_OWN_FLAGS = ("config", "show_options", "debug")


def _field_help(field) -> str:
    text = field.help.replace("%%", "%") or f"{field.owner}.{field.name}"
    if field.default not in (None, "None"):
        text += f" (default: {field.default})"
    return text


def add_recipe_field(group, field) -> None:
    """One recipe field as an option: its value is kept as text and handed to TRL's parser, which converts it."""
    kwargs = {"dest": field.name, "default": argparse.SUPPRESS, "help": _field_help(field).replace("%", "%%")}
    if field.is_bool:
        kwargs.update(nargs="?", const="true", metavar="BOOL")
    else:
        kwargs["metavar"] = "VALUE"
    group.add_argument(*flag_spellings(f"--{field.name}"), **kwargs)  # --max_steps and --max-steps, as TRL's parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.training.recipe_fields import COMMON_FIELDS, recipe_fields

    parser.add_argument(
        "--config", metavar="RECIPE.yaml",
        help="YAML recipe: a file, or the name of a shipped recipe (cpu_smoke, procure_qlora)"
    )
    parser.add_argument(
        *flag_spellings("--show-options"), action="store_true", dest="show_options",
        help="list every recipe field (dataset, training, model) with its help and default, and exit",
    )
    fields = recipe_fields()
    procure = parser.add_argument_group(_PROCURE_GROUP)
    for field in fields:
        if field.owner == "ConceptAwareSFTConfig":
            add_recipe_field(procure, field)
    common = parser.add_argument_group(_COMMON_GROUP)
    by_name = {f.name: f for f in fields}
    for name in COMMON_FIELDS:
        if name in by_name:
            add_recipe_field(common, by_name[name])
    parser.epilog = (
        f"Every other field of the {len(fields)} a recipe may set (TRL's ScriptArguments, SFTConfig, transformers' "
        "TrainingArguments, ModelConfig) goes in the YAML file or on the command line as --name value "
        "(e.g. --max_steps 10); `procure train --show-options` lists them all with their help and defaults. "
        "(--debug is procure's own flag: set TrainingArguments' debug field in the YAML file.)"
    )


def show_options() -> str:
    """The help of every recipe field, grouped by the dataclass that holds it."""
    from procure_trl.commands.options import CommandParser
    from procure_trl.training.recipe_fields import recipe_fields

    parser = CommandParser(
        prog="procure train", add_help=False, usage="procure train --config RECIPE.yaml [--FIELD VALUE ...]",
        description="Every field of a training recipe. Set it in the YAML file (name: value) or override it on "
        "the command line (--name value).",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in recipe_fields():
        group = groups.get(field.group) or groups.setdefault(field.group, parser.add_argument_group(field.group))
        add_recipe_field(group, field)
    return parser.format_help()


def recipe_overrides(args: argparse.Namespace) -> list[str]:
    """The TRL command-line overrides: the recipe options parsed here, then the flags nobody declared."""
    from procure_trl.training.recipe_fields import recipe_field_names

    argv = []
    for name in sorted(recipe_field_names() & set(vars(args))):
        if name not in _OWN_FLAGS:
            argv += [f"--{name}", getattr(args, name)]
    extra = list(getattr(args, "overrides", None) or [])
    return argv + (extra[1:] if extra[:1] == ["--"] else extra)


def check_recipe_names(config_path: str | None, overrides: list[str]) -> None:
    """Refuse unknown recipe fields (YAML keys and ``--name`` overrides) with the closest known name.

    Runs before TRL is imported, so a typo costs a fraction of a second instead of the import and the parse.
    """
    from procure_trl.training.recipe_fields import recipe_field_names

    known = recipe_field_names()
    for token in overrides:
        if token.startswith("--") and len(token) > 2:
            name = token[2:].split("=", 1)[0].replace("-", "_")
            if name not in known:
                raise UserError(
                    f"unknown recipe option --{name}{did_you_mean(name, known)}; "
                    "`procure train --show-options` lists every field"
                )
    if config_path:
        from procure_trl.training.recipe import check_recipe_fields

        check_recipe_fields(load_yaml_config("recipes", config_path), f"recipe {config_path}")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by ^C / SIGTERM after saving the resumable checkpoint :attr:`checkpoint`."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


def _save_on_interrupt():
    """A TrainerCallback: the first ^C (or SIGTERM, turned into one by the CLI) during training lets the current
    step finish, saves a checkpoint (model, optimizer, scheduler, RNG: ``--resume_from_checkpoint`` continues
    it) and stops with :class:`TrainingInterrupted`; a second ^C stops at once."""
    import signal

    from transformers import TrainerCallback

    class SaveOnInterrupt(TrainerCallback):
        def __init__(self) -> None:
            self.requested = False
            self.previous = None

        def _request(self, signum, frame) -> None:
            self.requested = True
            self._restore()  # a second ^C interrupts whatever runs

        def _restore(self) -> None:
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)
                self.previous = None

        def on_train_begin(self, args, state, control, **kwargs):
            try:
                self.previous = signal.signal(signal.SIGINT, self._request)
            except ValueError:  # not the main thread: leave ^C alone
                self.previous = None

        def on_step_end(self, args, state, control, **kwargs):
            if self.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            if self.requested:
                self._restore()
                raise TrainingInterrupted(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))

        def on_train_end(self, args, state, control, **kwargs):
            self._restore()

    return SaveOnInterrupt()


def interrupted_hint(args: argparse.Namespace, error: BaseException) -> str:
    """What an interrupted training run keeps (see :func:`procure_trl.cli.run_reporting_errors`)."""
    if isinstance(error, TrainingInterrupted):
        return (f"checkpoint saved to {error.checkpoint}; continue with the same command and "
                f"--resume_from_checkpoint {error.checkpoint}")
    return "nothing was saved (stopped before training began)"


def run(args: argparse.Namespace) -> int:
    if args.show_options:
        sys.stdout.write(show_options())
        return 0
    overrides = recipe_overrides(args)
    if args.config:
        args.config = resolve_config("recipes", args.config)  # a path, or the name of a shipped recipe
    if not args.config and not overrides:
        raise UserError("give a recipe with --config recipe.yaml (see examples/procure_qlora.yaml)")
    check_recipe_names(args.config, overrides)

    from procure_trl.training.recipe import parse_recipe, run_recipe

    script_args, training_args, model_args = parse_recipe(args.config, overrides)
    trainer = run_recipe(script_args, training_args, model_args, callbacks=[_save_on_interrupt()])
    trainer.accelerator.print(f"saved to {training_args.output_dir}")
    return 0
