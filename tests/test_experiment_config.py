"""``procure experiment`` configs: the shipped experiments hold the variants they promise, ``--smoke`` changes only
what it says, and every misspelled or misplaced key is one line naming it (before anything runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from procure_trl.cli import main
from procure_trl.errors import UserError
from procure_trl.experiments import ExperimentConfig, load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _by_name(config: ExperimentConfig) -> dict:
    """The training settings of every trained variant (first seed)."""
    return {plan.variant.name: plan.training for plan in config.runs()
            if plan.seed == config.seeds[0] and not plan.untuned}


def test_ablation_holds_plain_sft_each_term_alone_and_both_in_both_readings():
    runs = _by_name(load_experiment(str(EXPERIMENTS / "ablation.yaml")))
    settings = {
        name: (t["concept_loss_weight"], t.get("perturbed_token_weight", 1.0), t.get("token_loss", "weighted"))
        for name, t in runs.items() if t.get("train_on", "all") == "all"
    }
    lam_alpha = {(lam, alpha if reading == "weighted" else "perturbed_only")
                 for lam, alpha, reading in settings.values()}
    assert (0.0, 0.0) in lam_alpha  # plain SFT
    assert any(lam == 0 and alpha not in (0.0, "perturbed_only") for lam, alpha in lam_alpha)  # token term only
    assert any(lam > 0 and alpha == 0 for lam, alpha in lam_alpha)  # attention term only
    assert (0.1, 1.0) in lam_alpha  # the paper
    assert (0.0, "perturbed_only") in lam_alpha and (0.1, "perturbed_only") in lam_alpha  # the other reading
    assert list(runs)[0] == "sft"  # the baseline of the paired differences


def test_lambda_sweep_covers_the_five_values_and_plots_against_lambda():
    config = load_experiment(str(EXPERIMENTS / "lambda_sweep.yaml"))
    assert sorted(t["concept_loss_weight"] for t in _by_name(config).values()) == [0.0, 0.05, 0.1, 0.2, 0.5]
    assert config.sweep == "concept_loss_weight"


def test_generalization_scores_every_unseen_task_beside_in_distribution_controls():
    from procure_trl.dataset.builder import parse_test_sizes

    config = load_experiment(str(EXPERIMENTS / "generalization.yaml"))
    cross, controls = set(), set()
    for plan in config.runs():
        train, evaluated = config.datasets[plan.train_dataset], config.datasets[plan.eval_dataset]
        if "test_sizes" in train:  # a cross-benchmark run: one dataset, one benchmark whole on each side
            assert plan.train_dataset == plan.eval_dataset
            sizes = parse_test_sizes(train["test_sizes"])
            assert sorted(sizes.values()) == [0.0, 1.0] and set(sizes) == set(train["benchmarks"].split(","))
            cross.add((min(sizes, key=sizes.get), max(sizes, key=sizes.get)))
        else:  # a control: the held-out tasks of the benchmark it trained on
            assert train is evaluated and 0 < train["test_size"] < 1 and "," not in train["benchmarks"]
            controls.add(train["benchmarks"])
        assert "limit" not in plan.evaluation  # every test task is scored
    assert cross == {("humaneval", "mbpp"), ("mbpp", "humaneval")} and controls == {"humaneval", "mbpp"}
    assert all(plan.evaluation["limit"] is None for plan in config.smoke_version().runs())


def test_ablation_separates_the_data_from_the_loss():
    config = load_experiment(str(EXPERIMENTS / "ablation.yaml"))
    variants = {v.name: v for v in config.variants}
    assert variants["untuned"].untuned and not variants["untuned"].training
    originals = variants["sft-originals"].training
    assert originals["train_on"] == "originals"
    assert originals["concept_loss_weight"] == originals["perturbed_token_weight"] == 0.0
    untuned = next(p for p in config.runs() if p.variant.name == "untuned")
    assert untuned.evaluation_kwargs("data", "test") | {} == {**untuned.evaluation, "model": config.training[
        "model_name_or_path"], "dataset": "data", "split": "test", "output_dir": untuned.evaluation_dir}
    assert "paper's setting" not in (EXPERIMENTS / "ablation.yaml").read_text()


def test_alpha_is_swept_in_its_own_file():
    config = load_experiment(str(EXPERIMENTS / "alpha_sweep.yaml"))
    alphas = sorted(t["perturbed_token_weight"] for t in _by_name(config).values())
    assert config.sweep == "perturbed_token_weight" and len(set(alphas)) >= 4 and 0.0 in alphas
    assert config.training["concept_loss_weight"] == 0.1 and config.training["token_loss"] == "weighted"


def test_strength_builds_one_to_three_sites_with_several_variants():
    config = load_experiment(str(EXPERIMENTS / "strength.yaml"))
    (spec,) = config.datasets.values()
    assert spec["sites"] == "1,2,3" and spec["variants"] > 1
    assert set(config.evaluation["concepts"]) == {"if_else_flip", "independent_swap", "def_use_break"}


def test_an_untuned_variant_takes_no_training_fields(tmp_path):
    data = yaml.safe_load((EXPERIMENTS / "ablation.yaml").read_text())
    data["variants"][1]["training"] = {"concept_loss_weight": 0.1}
    with pytest.raises(UserError, match="variant 'untuned' is untuned .* sets training fields"):
        ExperimentConfig.from_dict(data)


@pytest.mark.parametrize("name", ["ablation", "lambda_sweep", "alpha_sweep", "generalization", "strength"])
def test_a_real_model_is_one_line_away(name):
    """Every variant trains the model of the shared `training` block: changing model_name_or_path there is enough."""
    config = load_experiment(str(EXPERIMENTS / f"{name}.yaml"))
    assert all("model_name_or_path" not in v.training for v in config.variants)
    assert "model_name_or_path" in config.training


def test_smoke_version_is_small_separate_and_keeps_the_variants():
    config = load_experiment(str(EXPERIMENTS / "ablation.yaml"))
    smoke = config.smoke_version()
    assert smoke.output_dir == config.output_dir + "-smoke"
    assert smoke.seeds == config.seeds[:1]
    spec = smoke.datasets["counterfactuals"]
    assert spec["limit"] == 10 and spec["output_dir"].startswith(smoke.output_dir)  # never the real dataset's folder
    real, small = _by_name(config), _by_name(smoke)
    assert list(real) == list(small)
    for name in real:
        assert small[name]["max_steps"] == 2 and small[name]["load_in_4bit"] is False
        for key in ("concept_loss_weight", "perturbed_token_weight", "token_loss"):
            assert small[name].get(key) == real[name].get(key)
    assert smoke.runs()[0].evaluation["limit"] == 2


def _write(tmp_path, data) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _minimal(**changes):
    data = {
        "datasets": {"d": "some/dataset"},
        "training": {"model_name_or_path": "m"},
        "variants": [{"name": "a", "training": {"concept_loss_weight": 0.0}}],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"varaints": []}, "unknown field 'varaints' (did you mean 'variants'?)"),
        ({"training": {"model_name_or_path": "m", "concept_los_weight": 1}},
         "training: unknown field 'concept_los_weight' (did you mean 'concept_loss_weight'?)"),
        ({"evaluation": {"temprature": 0.2}}, "evaluation: unknown field 'temprature' (did you mean 'temperature'?)"),
        ({"variants": [{"name": "a", "trainig": {}}]}, "variant 1: unknown field 'trainig' (did you mean 'training'?)"),
        ({"variants": [{"name": "a", "training": {"perturbed_token_wieght": 0}}]},
         "variant 'a' training: unknown field 'perturbed_token_wieght' (did you mean 'perturbed_token_weight'?)"),
        ({"datasets": {"d": {"benchmark": "humaneval"}}},
         "datasets d: unknown field 'benchmark' (did you mean 'benchmarks'?)"),
        ({"variants": [{"name": "a", "train_dataset": "e"}]}, "train_dataset 'e' is not in datasets"),
        ({"training": {"model_name_or_path": "m", "output_dir": "x"}}, "'output_dir' is set by the experiment"),
        ({"evaluation": {"adapter": "x"}}, "'adapter' is set by the experiment"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variant name 'a' is used twice"),
        ({"smoke": {"evaluation": {"limt": 1}}}, "smoke evaluation: unknown field 'limt' (did you mean 'limit'?)"),
        ({"sweep": "concept_loss_wieght"}, "sweep: unknown field 'concept_loss_wieght'"),
        ({"training": {}}, "training sets no model_name_or_path"),
        ({"tasks": ["generate", "repiar"]}, "tasks: unknown task 'repiar' (did you mean 'repair'?)"),
        ({"tasks": ["detect"]}, "tasks: generate is always evaluated"),
        ({"evaluation": {"task": "repair"}}, "'task' is set by the experiment"),
    ],
)
def test_bad_keys_are_one_line_naming_them(tmp_path, changes, expected):
    path = _write(tmp_path, _minimal(**changes))
    with pytest.raises(UserError) as info:
        load_experiment(path)
    message = str(info.value)
    assert expected in message and message.startswith(path) and "\n" not in message


def test_the_command_reports_a_typo_as_one_line_with_exit_2(tmp_path, capsys):
    path = _write(tmp_path, _minimal(seeds=[0], evaluation={"n_bootstraps": 10}))
    assert main(["experiment", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("procure experiment: error:") and "did you mean 'n_bootstrap'" in err
    assert err.count("\n") == 1


def test_the_command_refuses_to_start_without_the_code_execution_opt_in(tmp_path, capsys, monkeypatch):
    """Evaluation runs the models' programs; finding out after hours of training would be too late."""
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    out = tmp_path / "out"
    path = _write(tmp_path, _minimal(output_dir=str(out)))
    assert main(["experiment", "--config", path]) == 2
    assert "HF_ALLOW_CODE_EVAL" in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert main(["experiment", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml': no such file, and no shipped experiment config" in capsys.readouterr().err


@pytest.mark.parametrize("text, problem", [
    (None, "does not exist; give the path of a YAML {what}"),
    ("a: [1\n", "is not valid YAML:"),
    ("- a\n- b\n", "must be a YAML mapping of field: value lines"),
])
def test_recipes_and_experiment_configs_are_read_by_one_loader_with_one_error_format(tmp_path, text, problem):
    from procure_trl.commands.train import check_recipe_names
    from procure_trl.training.recipe import parse_recipe

    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text)
    messages = {}
    for what, read in (("recipe", lambda: check_recipe_names(str(path), [])),
                       ("recipe", lambda: parse_recipe(str(path), [])),
                       ("experiment config", lambda: load_experiment(str(path)))):
        with pytest.raises(UserError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{what} {str(path)!r} {problem.format(what=what).split(':')[0]}"), message
        messages.setdefault(what, set()).add(message)
    assert len(messages["recipe"]) == 1  # the command's early check and the library say the same
    # one format: the two kinds differ only in what they are called and the example they point to
    def normalise(m):
        return m.replace("experiment config", "X").replace("recipe", "X").replace(
            "experiments/ablation.yaml", "EX").replace("examples/procure_qlora.yaml", "EX")

    assert {normalise(m) for ms in messages.values() for m in ms} == {normalise(next(iter(messages["recipe"])))}


def test_tasks_default_to_generate_and_each_downstream_task_gets_a_folder_of_its_own(tmp_path):
    plain = load_experiment(_write(tmp_path, _minimal()))
    assert plain.tasks == ["generate"] and all(p.downstream_tasks == [] for p in plain.runs())
    config = load_experiment(_write(tmp_path, _minimal(tasks=["generate", "repair", "detect", "repair"])))
    plan = config.runs()[0]
    assert plan.tasks == ["generate", "repair", "detect"] and plan.downstream_tasks == ["repair", "detect"]
    assert plan.task_dir("generate") == plan.evaluation_dir
    assert Path(plan.task_dir("repair")) == Path(plan.run_dir) / "evaluation-repair"
