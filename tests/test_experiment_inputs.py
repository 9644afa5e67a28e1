"""An experiment checks what it reads before its first run: a dataset folder is reused only when the builder recorded
it as finished with the same settings (else one line naming the difference), and every dataset and model path
exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from procure_trl.cli import main
from procure_trl.errors import UserError
from procure_trl.experiments.config import ExperimentConfig
from procure_trl.experiments.runner import prepare_datasets

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "engine_counterfactuals.jsonl"


def _config(tmp_path, **build) -> ExperimentConfig:
    spec = {"input_jsonl": str(FIXTURE), "benchmarks": "humaneval,mbpp", "test_size": 0.34,
            "output_dir": str(tmp_path / "data"), **build}
    return ExperimentConfig.from_dict({"output_dir": str(tmp_path / "exp"), "datasets": {"d": spec},
                                       "training": {"model_name_or_path": "m"}, "variants": [{"name": "v"}]})


def test_a_dataset_is_reused_only_when_built_with_the_same_settings(tmp_path, monkeypatch, capsys):
    import procure_trl.dataset.builder as builder

    assert prepare_datasets(_config(tmp_path, seed=1)) == {"d": str(tmp_path / "data")}
    assert "dataset d: building into" in capsys.readouterr().out

    def no_build(config):
        raise AssertionError("rebuilt a dataset built earlier with the same settings")

    monkeypatch.setattr(builder, "build_counterfactual_dataset", no_build)
    prepare_datasets(_config(tmp_path, seed=1))
    assert "dataset d: using" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"^dataset d: .*data was built with other settings: seed 1 then, 2 now;"):
        prepare_datasets(_config(tmp_path, seed=2))


def test_a_dataset_folder_without_a_build_record_is_not_reused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README.md").write_text("a dataset built some other way")
    with pytest.raises(UserError, match="no record of the build"):
        prepare_datasets(_config(tmp_path))


@pytest.mark.parametrize("missing", ["dataset", "model"])
def test_a_missing_dataset_or_model_stops_the_experiment_before_the_first_run(tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    dataset = tmp_path / "no-dataset" if missing == "dataset" else tmp_path / "data"
    if missing == "model":
        assert prepare_datasets(_config(tmp_path)) == {"d": str(dataset)}
        capsys.readouterr()
    model = str(tmp_path / "no-model") if missing == "model" else "tests/../no-model"
    data = {"output_dir": str(tmp_path / "exp"), "datasets": {"d": str(dataset)},
            "training": {"model_name_or_path": model, "bf16": False, "use_cpu": True},
            "variants": [{"name": "first"}, {"name": "second"}]}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    gone = dataset if missing == "dataset" else tmp_path / "no-model"
    assert f"variant 'first': {missing}" in captured.err and f"no such folder: {gone}" in captured.err
    assert "=== run" not in captured.out and not (tmp_path / "exp" / "runs").exists()
