"""Options generated from the config dataclasses, and `procure`'s one-line errors."""

from __future__ import annotations

import argparse
import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest

from procure_trl.cli import SUBCOMMANDS, build_parser, main, parse_args
from procure_trl.commands.options import CommandParser, add_options, config_kwargs
from procure_trl.errors import UserError, did_you_mean


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class ToyConfig:
    name: str = field(metadata={"help": "a required name"})
    steps: int = field(default=3, metadata={"help": "how many steps"})
    rate: float | None = field(default=None, metadata={"help": "optional rate"})
    colour: Colour = field(default=Colour.RED, metadata={"help": "a colour"})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "the mode"})
    ks: tuple[int, ...] = field(default=(1, 5), metadata={"help": "some integers"})
    verbose: bool = field(default=False, metadata={"help": "talk more"})
    check: bool = field(default=True, metadata={"help": "run the checks", "off_help": "skip the checks"})
    num_workers: int = field(default=2, metadata={"help": "workers", "flags": "--workers"})
    secret: str | None = field(default=None, metadata={"help": "not a flag", "cli": False})


def _toy_parser(**kwargs) -> CommandParser:
    parser = CommandParser(prog="toy")
    add_options(parser, ToyConfig, **kwargs)
    return parser


def test_fields_become_typed_flags_and_build_the_config():
    args = _toy_parser().parse_args(
        ["--name", "x", "--steps", "7", "--rate", "0.5", "--colour", "blue", "--mode", "slow", "--ks", "1,10",
         "--verbose", "--no-check", "--workers", "4"])
    config = ToyConfig(**config_kwargs(ToyConfig, args))
    assert config == ToyConfig(name="x", steps=7, rate=0.5, colour=Colour.BLUE, mode="slow", ks=(1, 10),
                               verbose=True, check=False, num_workers=4)


def test_defaults_come_from_the_dataclass_and_underscore_spelling_is_accepted():
    args = _toy_parser().parse_args(["--name", "x"])
    assert ToyConfig(**config_kwargs(ToyConfig, args)) == ToyConfig(name="x")
    args = _toy_parser().parse_args(["--name", "x", "--no_check"])
    assert args.check is False
    assert not hasattr(args, "secret")


def test_help_shows_every_default_and_hides_the_aliases():
    text = _toy_parser().format_help()
    for expected in ("how many steps (default: 3)", "a colour (default: red)", "(default: 1,5)",
                     "skip the checks", "--workers WORKERS", "{fast,slow}"):
        assert expected in " ".join(text.split()), expected
    assert "--no_check" not in text and "--secret" not in text
    assert "optional rate (default" not in text  # None is no default worth showing


def test_bad_values_are_one_line_errors_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _toy_parser().parse_args(["--name", "x", "--colour", "blu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "--colour" in err and "did you mean 'blue'" in err
    with pytest.raises(SystemExit):
        _toy_parser().parse_args(["--name", "x", "--steps", "many"])
    assert "argument --steps: invalid int value: 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _toy_parser().parse_args(["--name", "x", "--ks", "1,five"])
    assert "argument --ks: invalid int value 'five' in a comma-separated list" in capsys.readouterr().err


def test_a_field_without_help_or_with_an_unknown_type_is_refused():
    @dataclass
    class NoHelp:
        x: int = 1

    @dataclass
    class Weird:
        x: dict = field(default_factory=dict, metadata={"help": "a mapping"})

    with pytest.raises(ValueError, match="'x' has no metadata"):
        add_options(argparse.ArgumentParser(), NoHelp)
    with pytest.raises(TypeError, match="'x'.*no command-line form"):
        add_options(argparse.ArgumentParser(), Weird)


def test_did_you_mean():
    suggestion = did_you_mean("concept_los_weight", ["concept_loss_weight", "seed"])
    assert suggestion == " (did you mean 'concept_loss_weight'?)"
    assert did_you_mean("zzz", ["concept_loss_weight"]) == ""


def test_user_errors_are_one_line_with_exit_2_and_debug_shows_the_traceback(tmp_path, capsys):
    bad = ["perturb", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("procure perturb: error:") and "missing.jsonl" in err and err.count("\n") == 1
    with pytest.raises(UserError):
        main(bad + ["--debug"])


def _option_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _option_actions(sub)
        elif (action.option_strings and action.help != argparse.SUPPRESS
              and not isinstance(action, argparse._HelpAction)):
            yield parser.prog, action


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_option_of_every_subcommand_has_help_and_shows_its_default(command):
    parser = build_parser([command])
    actions = list(_option_actions(parser))
    assert any(prog == f"procure {command}" and a.dest != "debug" for prog, a in actions), "no options found"
    for prog, action in actions:
        flag = f"{prog} {action.option_strings[0]}"
        assert action.help and action.help.strip(), f"{flag} has no help text"
        takes_value = action.nargs != 0
        if takes_value and action.default not in (None, argparse.SUPPRESS, [], (), ""):
            assert "default" in action.help, f"{flag} has default {action.default!r} but its help does not show it"


def test_perturb_llm_defaults_are_the_dataclass_defaults():
    from procure_trl.commands import perturb_llm
    from procure_trl.commands.options import cli_fields
    from procure_trl.perturb.llm.config import LLMGeneratorConfig
    from procure_trl.validation import ValidationConfig

    args = parse_args(["perturb", "problems.jsonl", "-o", "out.jsonl", "--generator", "llm", "--model", "m"])
    config = perturb_llm.config_from_args(args)
    reference = LLMGeneratorConfig(model="m")
    for option in cli_fields(LLMGeneratorConfig):
        assert getattr(config, option.name) == getattr(reference, option.name), option.name
    assert config.validation.timeout == ValidationConfig().timeout  # the test timeout of both engines


def test_evaluate_help_says_code_execution_needs_the_opt_in():
    text = " ".join(build_parser(["evaluate"])._subparsers._group_actions[0].choices["evaluate"].format_help().split())
    assert "HF_ALLOW_CODE_EVAL=1" in text


def test_a_bool_on_by_default_needs_help_for_its_flag():
    @dataclass
    class NoOffHelp:
        check: bool = field(default=True, metadata={"help": "run the checks"})

    with pytest.raises(ValueError, match="off_help"):
        add_options(argparse.ArgumentParser(), NoOffHelp)


def test_no_empty_default_is_shown_in_any_commands_help():
    from procure_trl.cli import SUBCOMMANDS, build_parser

    for name in SUBCOMMANDS:
        if name == "train":  # TRL's own parser
            continue
        text = build_parser([name]).chosen_subparser.format_help()
        assert "(default: )" not in text, name
        assert "turns it off" not in text, name


def _spellings_case(parser: argparse.ArgumentParser, action: argparse.Action) -> tuple[list[str], list[str]]:
    """Two command lines setting ``action`` with its flag spelled ``--x-y`` and ``--x_y``, and a value for it."""
    flag = next(s for s in action.option_strings if s.startswith("--"))
    if action.choices:
        value = [next(str(c) for c in action.choices if c != action.default)]
    elif action.nargs == 0:
        value = []
    elif action.nargs == "?":  # procure train's booleans: --flag [BOOL]
        value = ["true"]
    else:
        value = [_VALUES.get(action.dest, "7")]
    dashed, underscored = "--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")
    return [dashed, *value], [underscored, *value]


#: values that the generic "7" does not fit (choices and lists come from the type's own parser)
_VALUES = {"concepts": "name_random", "benchmark": "humaneval", "price": "m=1,2", "k": "1", "stop_sequences": "x",
           "engine": "ray", "prompt_format": "chat", "backend": "transformers", "dtype": "float32",
           "generator": "llm", "runs": "a", "task": "repair", "kinds": "comparison"}
#: the positional inputs each subcommand needs besides the flag under test
_REQUIRED = {"perturb": [], "build": [], "train": [], "evaluate": ["--model", "m", "--output-dir", "o"],
             "compare": ["a", "b", "--output-dir", "o"],
             "experiment": [], "publish-metrics": ["--namespace", "me"],
             "attention-report": ["--model", "m", "--dataset", "d"],
             "mutate": ["--counterfactuals", "c.jsonl", "--output", "m.jsonl"]}


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_flag_of_every_subcommand_accepts_both_spellings(command):
    parser = build_parser([command]).chosen_subparser
    flags = [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
             and any(s.startswith("--") for s in a.option_strings)]
    assert len(flags) > 1, "no options found"
    for action in flags:
        required = list(_REQUIRED[command])
        given = next((f for f in action.option_strings if f in required), None)
        if given:  # the flag under test is a required one: drop its pair
            del required[required.index(given):required.index(given) + 2]
        parsed = []
        for argv in _spellings_case(parser, action):
            args = parse_args([command, *required, *argv])
            parsed.append(getattr(args, action.dest))
        assert parsed[0] == parsed[1] and parsed[0] != action.default, (
            f"procure {command} {action.option_strings}: {parsed} (default {action.default!r})")


def test_mutate_flags_are_config_fields_in_both_spellings():
    from procure_trl.commands.mutate import MutateArguments
    from procure_trl.perturb.mutate import MutationConfig
    from procure_trl.perturb.records import OutputConfig

    dashed = parse_args(["mutate", "--counterfactuals", "c.jsonl", "-o", "m.jsonl", "--problems", "p.jsonl",
                         "--num-workers", "2", "--strict"])
    underscored = parse_args(["mutate", "--counterfactuals", "c.jsonl", "--output", "m.jsonl", "--problems",
                              "p.jsonl", "--num_workers", "2", "--strict"])
    for args in (dashed, underscored):
        assert MutateArguments(**config_kwargs(MutateArguments, args)) == MutateArguments("c.jsonl", "m.jsonl",
                                                                                          "p.jsonl")
        assert MutationConfig(**config_kwargs(MutationConfig, args)).num_workers == 2
        assert OutputConfig(**config_kwargs(OutputConfig, args)).strict is True
    with pytest.raises(SystemExit):  # still required, in either spelling
        parse_args(["mutate", "--output", "m.jsonl"])


def test_train_forwards_unlisted_recipe_fields_in_both_spellings():
    from procure_trl.commands.train import check_recipe_names, recipe_overrides

    for flag in ("--warmup-steps", "--warmup_steps"):
        args = parse_args(["train", "--config", "r.yaml", flag, "2"])
        overrides = recipe_overrides(args)
        check_recipe_names(None, overrides)  # a known field in either spelling
        assert overrides == [flag, "2"]
