"""The `procure` dispatcher: subcommands, unknown flags, TRL-style overrides for `train`."""

import pytest

from procure_trl.cli import SUBCOMMANDS, main, parse_args


def test_every_subcommand_has_a_module_with_the_two_hooks():
    from procure_trl.cli import _command_module

    for name in SUBCOMMANDS:
        module = _command_module(name)
        assert callable(module.add_arguments) and callable(module.run), name


def test_unknown_flag_is_rejected_for_perturb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["perturb", "--output", "out.jsonl", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["train", "--config", "r.yaml", "--max_steps", "3", "--learning_rate", "1e-4", "--warmup_steps", "2"],
    ["train", "--config", "r.yaml", "--", "--max_steps", "3", "--learning_rate", "1e-4", "--warmup_steps", "2"],
])
def test_train_forwards_recipe_overrides(argv):
    from procure_trl.commands.train import recipe_overrides

    args = parse_args(argv)
    assert args.config == "r.yaml"
    # --max_steps and --learning_rate are listed in --help, --warmup_steps is not: all reach TRL's parser
    forwarded = recipe_overrides(args)
    pairs = {forwarded[i]: forwarded[i + 1] for i in range(0, len(forwarded), 2)}
    assert pairs == {"--max_steps": "3", "--learning_rate": "1e-4", "--warmup_steps": "2"}


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "COMMAND" in capsys.readouterr().err


def test_version_prints_the_package_version_and_exits_0(capsys):
    from procure_trl import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"procure_trl {__version__}"
