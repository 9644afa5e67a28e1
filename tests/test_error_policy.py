"""One error policy: bad input is one ``error:`` line with exit code 2; a bug in the library keeps its type and
its traceback instead of posing as the user's mistake."""

import subprocess
import sys

import pytest

from procure_trl.cli import main
from procure_trl.errors import (
    ExistingOutputError,
    MissingInputError,
    NotPermittedError,
    UserError,
    error_line,
)

BUG = "an internal invariant broke"

#: command -> (module, function the command's run calls, argv with {tmp} for the test's folder)
_RUNS = {
    "build": ("procure_trl.dataset.builder", "build_counterfactual_dataset",
              ["build", "--input-jsonl", "{tmp}/in.jsonl", "--benchmarks", "humaneval", "--output-dir", "{tmp}/o"]),
    "evaluate": ("procure_trl.evaluation.run", "evaluate_model",
                 ["evaluate", "--model", "m", "--output-dir", "{tmp}/o"]),
    "compare": ("procure_trl.evaluation.compare", "compare_runs",
                ["compare", "{tmp}/a", "{tmp}/b", "--output-dir", "{tmp}/o"]),
    "attention-report": ("procure_trl.attention_report.report", "run_attention_report",
                         ["attention-report", "--model", "m", "--dataset", "d", "--output-dir", "{tmp}/o"]),
    "perturb": ("procure_trl.perturb.engine", "generate_to_jsonl",
                ["perturb", "--benchmark", "humaneval", "--limit", "1", "--output", "{tmp}/cf.jsonl", "--no-progress"]),
    "perturb --dataset": ("procure_trl.perturb.scale.run", "perturb_dataset",
                          ["perturb", "--dataset", "{tmp}/d.jsonl", "--output-dir", "{tmp}/o"]),
    "mutate": ("procure_trl.perturb.records", "read_records",
               ["mutate", "--counterfactuals", "{tmp}/cf.jsonl", "--output", "{tmp}/m.jsonl"]),
}


def _argv(argv: list[str], tmp_path) -> list[str]:
    return [a.replace("{tmp}", str(tmp_path)) for a in argv]


@pytest.mark.parametrize("error", [ValueError, FileNotFoundError, RuntimeError])
@pytest.mark.parametrize("command", list(_RUNS))
def test_a_bug_inside_a_command_run_is_not_turned_into_a_user_error(command, error, tmp_path, monkeypatch, capsys):
    module, function, argv = _RUNS[command]

    def broken(*args, **kwargs):
        raise error(BUG)

    monkeypatch.setattr(f"{module}.{function}", broken)
    with pytest.raises(error, match=BUG) as raised:
        main(_argv(argv, tmp_path))
    assert not isinstance(raised.value, UserError)  # its own type: the traceback shows where it came from
    assert "error:" not in capsys.readouterr().err  # and no one-line disguise


_BROKEN_COMPARE = """
import sys
import procure_trl.evaluation.compare as compare
def broken(config):
    raise ValueError("an internal invariant broke")
compare.compare_runs = broken
from procure_trl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_bug_exits_with_its_traceback_not_exit_2(tmp_path):
    argv = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output-dir", str(tmp_path / "o")]
    done = subprocess.run([sys.executable, "-c", _BROKEN_COMPARE, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in done.stderr and "in broken" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1] == "ValueError: an internal invariant broke"
    assert "error:" not in done.stderr.replace("ValueError:", "")


def _one_error_line(capsys, command: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"procure {command}: error: ")
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (["perturb", "{tmp}/missing.jsonl", "--output", "{tmp}/o.jsonl"],
     "problem file '{tmp}/missing.jsonl' does not exist"),
    (["perturb", "--benchmark", "humaneval", "--split", "train", "--output", "{tmp}/o.jsonl"],
     "HumanEval has only the 'test' split"),
    (["perturb", "--benchmark", "humaneval", "--limit", "1", "--output", "{tmp}"],
     "cannot write the output {tmp}: it is a folder"),
    (["perturb", "--benchmark", "humaneval", "--limit", "1", "--output", "{tmp}/full.jsonl"],
     "{tmp}/full.jsonl already exists; pass --resume"),
    (["mutate", "--counterfactuals", "{tmp}/missing.jsonl", "--output", "{tmp}/m.jsonl"],
     "{tmp}/missing.jsonl does not exist; give a file written by `procure perturb`"),
    (["mutate", "--counterfactuals", "{tmp}/binary.jsonl", "--output", "{tmp}/m.jsonl"],
     "{tmp}/binary.jsonl: not UTF-8 text"),
    (["mutate", "--counterfactuals", "{tmp}/full.jsonl", "--output", "{tmp}/m.jsonl"],
     "{tmp}/full.jsonl:1: missing field(s)"),
    (["compare", "{tmp}", "{tmp}", "--output-dir", "{tmp}/c"], "'{tmp}' holds no report.json"),
    (["build", "--input-jsonl", "{tmp}/full.jsonl", "--benchmarks", "humaneval", "--output-dir", "{tmp}/b"],
     "{tmp}/full.jsonl:1: missing field(s)"),
])
def test_bad_input_the_library_reports_is_one_line_with_exit_2(argv, expected, tmp_path, capsys):
    (tmp_path / "full.jsonl").write_text('{"task_id": "HumanEval/0"}\n')
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\n")
    assert main(_argv(argv, tmp_path)) == 2
    assert expected.replace("{tmp}", str(tmp_path)) in _one_error_line(capsys, argv[0])


@pytest.fixture
def offline_without_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def test_perturb_a_hub_dataset_offline_is_one_line_before_any_work(offline_without_cache, tmp_path, capsys):
    assert main(["perturb", "--dataset", "someone/no-such-dataset", "--output-dir", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys, "perturb")
    assert "--dataset" in line and "'someone/no-such-dataset' is not in the Hugging Face cache" in line
    assert "HF_HUB_OFFLINE is set" in line and "download it once with the Hub reachable" in line
    assert not (tmp_path / "o").exists()


def test_training_on_a_hub_dataset_offline_is_one_user_error(offline_without_cache):
    from types import SimpleNamespace

    from procure_trl.training.recipe import load_training_datasets

    script_args = SimpleNamespace(dataset_name="someone/no-such-dataset", dataset_config="all",
                                  dataset_streaming=False, dataset_train_split="train", dataset_test_split=None)
    with pytest.raises(UserError, match=r"dataset 'someone/no-such-dataset'.*not in the Hugging Face cache.*"
                                        r"HF_HUB_OFFLINE is set") as raised:
        load_training_datasets(script_args)
    assert "\n" not in str(raised.value)


def test_user_errors_about_files_keep_their_os_error_type(tmp_path):
    from procure_trl.perturb.records import check_output_path, read_records
    from procure_trl.problems import read_jsonl

    with pytest.raises(MissingInputError) as missing:
        read_jsonl(tmp_path / "missing.jsonl")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, UserError)
    with pytest.raises(MissingInputError):
        read_records(tmp_path / "missing.jsonl")
    (tmp_path / "out.jsonl").write_text("{}\n")
    with pytest.raises(ExistingOutputError) as existing:
        check_output_path(tmp_path / "out.jsonl")
    assert isinstance(existing.value, FileExistsError)
    with pytest.raises(NotPermittedError) as folder:
        check_output_path(tmp_path)
    assert isinstance(folder.value, PermissionError)


def test_argparse_errors_and_user_errors_share_one_printer(tmp_path, capsys, monkeypatch):
    import procure_trl.errors

    printed = []
    real = procure_trl.errors.print_error

    def recording(prog, message):
        printed.append((prog, message))
        real(prog, message)

    monkeypatch.setattr("procure_trl.errors.print_error", recording)
    monkeypatch.setattr("procure_trl.cli.print_error", recording)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path), str(tmp_path), "--bogus", "--output-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    assert main(["compare", str(tmp_path), str(tmp_path), "--output-dir", str(tmp_path / "c")]) == 2
    assert [prog for prog, _ in printed] == ["procure compare", "procure compare"]
    assert printed[0][1].startswith("unrecognized arguments: --bogus") and "holds no report.json" in printed[1][1]
    assert capsys.readouterr().err.splitlines() == [error_line(prog, message) for prog, message in printed]
    assert error_line("procure x", "two\n  lines") == "procure x: error: two lines"


def test_a_hub_failure_during_the_work_is_one_line_and_a_bug_passes(tmp_path):
    from procure_trl.hub import hub_operation

    with pytest.raises(UserError) as raised:
        with hub_operation("the push to me/cf", "rerun the same command to push it"):
            raise ConnectionError("[Errno 101] Network is unreachable\nmore detail")
    assert str(raised.value) == ("the push to me/cf failed (ConnectionError: [Errno 101] Network is unreachable); "
                                 "rerun the same command to push it")
    for bug in (ValueError(BUG), FileNotFoundError(BUG), KeyError(BUG)):
        with pytest.raises(type(bug)) as passed:
            with hub_operation("the push to me/cf", "rerun"):
                raise bug
        assert passed.value is bug


def test_a_push_that_fails_after_the_build_is_one_line_naming_the_kept_folder(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    import procure_trl.hub

    def no_route(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(procure_trl.hub, "require_hub_push", lambda repo_id: None)  # as if the Hub answered then
    monkeypatch.setattr("procure_trl.dataset.builder.push", no_route)
    fixture = Path(__file__).parent / "fixtures" / "engine_counterfactuals.jsonl"
    out = tmp_path / "built"
    assert main(["build", "--input-jsonl", str(fixture), "--benchmarks", "humaneval,mbpp", "--output-dir", str(out),
                 "--push-to-hub", "--repo-id", "me/cf"]) == 2
    line = _one_error_line(capsys, "build")
    assert line == (f"procure build: error: the push to me/cf failed (TimeoutError: timed out); the dataset is built "
                    f"in {out}; rerun the same command to push it")
    assert (out / "README.md").is_file()
