"""Run an experiment: build its datasets, train and evaluate every (variant, seed), compare them.

Training is ``procure train``'s library (:func:`~procure_trl.training.recipe.run_recipe` on the run's
``recipe.yaml``, which ``procure train --config`` runs the same way), evaluation ``procure evaluate``'s
(:func:`~procure_trl.evaluation.run.evaluate_model` on the dataset's eval split). Everything runs in this process:
importing torch and TRL once matters on small machines.

Resuming: each run records in ``status.json`` what it finished and with which settings. A rerun skips a run whose
training (the saved adapter or model) and evaluation (``report.json``) are complete with the same settings,
resumes an interrupted training from its last checkpoint, and re-evaluates when only the evaluation settings
changed. A finished training is never replaced silently: other training settings for a finished run fail that
run with a message saying what changed. A run that fails does not stop the others; the result lists it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from procure_trl.errors import UserError
from procure_trl.experiments.config import ExperimentConfig, RunPlan
from procure_trl.experiments.results import ExperimentResult, RunOutcome
from procure_trl.training.recipe import saved_weights

__all__ = ["RunOutcome", "ExperimentResult", "run_experiment", "prepare_datasets", "saved_weights"]

#: Per-step training logs kept in status.json (the ProCURE trainer logs its two loss terms beside TRL's loss).
_LOGGED = ("loss", "loss_token", "loss_att")


# --------------------------------------------------------------------------------------------------
# status.json
# --------------------------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """Settings as JSON would give them back (tuples become lists), so a fingerprint compares equal after a reload."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    """Write through a temporary file and a rename: an interruption never leaves half a status."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys whose value differs between two settings dicts (missing on one side counts), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


# --------------------------------------------------------------------------------------------------
# datasets and the smoke model
# --------------------------------------------------------------------------------------------------


def prepare_datasets(config: ExperimentConfig) -> dict[str, str]:
    """The path or Hub id of every dataset; those given as ``procure build`` fields are built once. A folder that the
    builder recorded as finished with the same settings (:func:`~procure_trl.dataset.builder.build_settings`: the
    fields and the fingerprints of the inputs) is reused; one built with other settings, or holding files without
    such a record, stops the experiment with one line naming the difference."""
    from procure_trl.dataset.builder import (
        BuildConfig,
        build_counterfactual_dataset,
        build_folder_state,
        build_settings,
        built_with_other_settings,
    )

    paths = {}
    for name, spec in config.datasets.items():
        out = config.dataset_build_dir(name)
        if out is None:
            paths[name] = str(spec)
            continue
        try:
            build_config = BuildConfig(**{**spec, "output_dir": out})
            settings = build_settings(build_config)
            state = build_folder_state(out, settings)
        except (TypeError, ValueError) as err:
            raise UserError(f"dataset {name}: {' '.join(str(err).split())}") from err
        if state == "other":
            raise UserError(f"dataset {name}: {out} was built with other settings: "
                            f"{built_with_other_settings(out, settings)}; remove the folder to rebuild it there, or "
                            "give this dataset another output_dir")
        if state == "unrecorded":
            raise UserError(f"dataset {name}: {out} holds files but no record of the build that made them; remove "
                            "the folder to build it there, or give this dataset another output_dir")
        if state == "finished":
            print(f"dataset {name}: using {out} (built earlier with the same settings)", flush=True)
        else:
            print(f"dataset {name}: building into {out}", flush=True)
            try:
                build_counterfactual_dataset(build_config)
            except (ValueError, FileNotFoundError) as err:
                raise UserError(f"dataset {name}: {' '.join(str(err).split())}") from err
        paths[name] = out
    return paths


def _smoke_model(config: ExperimentConfig) -> dict[str | None, dict[str, Any]]:
    """Under ``--smoke`` without a model of its own: a tiny random Llama saved in ``OUTPUT/tiny-model``, one per
    entry of ``models`` (``OUTPUT/tiny-model-<name>``, each from its own seed: different models)."""
    if "model_name_or_path" in config.smoke.training:
        return {}
    from procure_trl.testing_utils import save_tiny_model

    names: list[str | None] = list(config.models) if config.models else [None]
    extra: dict[str | None, dict[str, Any]] = {}
    for index, name in enumerate(names):
        folder = os.path.join(config.output_dir, "tiny-model" + (f"-{name}" if name else ""))
        if not saved_weights(folder):  # made once: the finished runs of a rerun keep their base model
            save_tiny_model(folder, seed=index)
        extra[name] = {"model_name_or_path": folder}
    return extra


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------


def _free_memory() -> None:
    """Release the previous run's model before the next one loads (the GPU cache too)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _write_recipe(path: str, recipe: Mapping[str, Any]) -> None:
    import yaml

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# written by procure experiment; `procure train --config` this file reruns the training\n")
        yaml.safe_dump(dict(recipe), handle, sort_keys=False)


def _train(plan: RunPlan, recipe: dict[str, Any], status: dict[str, Any], save) -> None:
    from procure_trl.training.recipe import parse_recipe, run_recipe

    fingerprint = _canonical(recipe)
    previous = status.get("train") or {}
    resume = None
    if previous.get("fingerprint") == fingerprint:
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(plan.train_dir) if os.path.isdir(plan.train_dir) else None
    elif os.path.isdir(plan.train_dir):  # an unfinished run with other settings: its checkpoints do not apply
        shutil.rmtree(plan.train_dir)
    recipe_path = os.path.join(plan.run_dir, "recipe.yaml")
    _write_recipe(recipe_path, recipe)  # the run's record: `procure train --config` it to rerun the training
    script_args, training_args, model_args = parse_recipe(recipe, [], source=f"recipe {recipe_path}")
    if resume:
        print(f"[{plan.name}] resuming training from {resume}", flush=True)
        training_args.resume_from_checkpoint = resume
    else:  # status.json says this run's training is unfinished: what its folder holds is this run's to replace
        training_args.overwrite_output_dir = True
    status["train"] = {"state": "running", "fingerprint": fingerprint}
    status.pop("evaluate", None)  # a new training makes any earlier evaluation stale
    save()
    start = time.perf_counter()
    trainer = run_recipe(script_args, training_args, model_args)
    history = [
        {key: entry[key] for key in ("step", *_LOGGED) if key in entry}
        for entry in trainer.state.log_history if "loss" in entry
    ]
    summary: dict[str, float] = next((e for e in reversed(trainer.state.log_history) if "train_loss" in e), {})
    del trainer
    _free_memory()
    status["train"] = {
        "state": "done",
        "fingerprint": fingerprint,
        "seconds": round(time.perf_counter() - start, 2),
        "train_loss": summary.get("train_loss"),
        "steps": summary.get("step"),
        "history": history,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    save()


def _evaluation_summary(report) -> dict[str, Any]:
    """The headline numbers of an evaluation report, kept in status.json for the table."""
    from procure_trl.metrics.ccs import GAP_KEYS

    original = report.pass_at_k.get("original", {})
    ccs = report.ccs or {}
    return {
        "pass_at_k": {k: v for k, v in original.items() if k.startswith("pass@")},
        "ccs": ccs.get("ccs"),
        "ccs_ci": ccs.get("ccs_ci"),
        "ccs_rows": ccs.get("rows"),
        **{key: ccs.get(key) for key in GAP_KEYS},  # consistency beyond chance and the paired pass-rate test
    }


def _evaluate(plan: RunPlan, kwargs: dict[str, Any], fingerprint: Any, status: dict[str, Any], save) -> None:
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.run import evaluate_model

    status["evaluate"] = {"state": "running", "fingerprint": fingerprint}
    save()
    start = time.perf_counter()
    report = evaluate_model(EvaluationConfig(**kwargs))
    _free_memory()
    status["evaluate"] = {
        "state": "done",
        "fingerprint": fingerprint,
        "seconds": round(time.perf_counter() - start, 2),
        "report": report.files.get("report", os.path.join(plan.evaluation_dir, "report.json")),
        **_canonical(_evaluation_summary(report)),
    }
    save()


def _training_changed(previous: Mapping[str, Any], recipe: Mapping[str, Any]) -> str:
    old, new = previous.get("fingerprint") or {}, _canonical(recipe)
    changed = _changed_keys(old, new)
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:4])


def run_one(plan: RunPlan, recipe: dict[str, Any], evaluation: dict[str, Any]) -> RunOutcome:
    """Train (unless finished, or untuned) and evaluate (unless finished with these settings) one run."""
    status_path = os.path.join(plan.run_dir, "status.json")
    status = _read_json(status_path) or {"variant": plan.variant.name, "seed": plan.seed}

    def save() -> None:
        _write_json(status_path, status)

    previous = status.get("train") or {}
    trained = evaluated = False
    if plan.untuned:  # the base model as it is: nothing to train
        status["train"] = {"state": "untuned"}
    elif previous.get("state") == "done" and saved_weights(plan.train_dir):
        if previous.get("fingerprint") != _canonical(recipe):
            return RunOutcome(plan, "failed", status=status, error=(
                f"{plan.train_dir} was trained with other settings ({_training_changed(previous, recipe)}); "
                f"remove {plan.run_dir} to retrain, or give the experiment another output_dir"))
    else:
        print(f"[{plan.name}] training", flush=True)
        _train(plan, recipe, status, save)
        trained = True
    # the evaluation belongs to this training: a new training makes the old report stale
    fingerprint = _canonical({**evaluation, "trained_at": status["train"].get("finished_at")})
    done = status.get("evaluate") or {}
    report_path = os.path.join(plan.evaluation_dir, "report.json")
    if not (done.get("state") == "done" and done.get("fingerprint") == fingerprint and os.path.isfile(report_path)):
        if done.get("state") == "done":
            print(f"[{plan.name}] evaluation settings changed: evaluating again", flush=True)
        print(f"[{plan.name}] evaluating", flush=True)
        _evaluate(plan, evaluation, fingerprint, status, save)
        evaluated = True
    for task in plan.downstream_tasks:
        evaluated = _evaluate_task(plan, task, evaluation, status, save) or evaluated
    state = "done" if trained or evaluated else "skipped"
    return RunOutcome(plan, state, trained=trained, evaluated=evaluated, status=status)


def _evaluate_task(plan: RunPlan, task: str, evaluation: dict[str, Any], status: dict[str, Any], save) -> bool:
    """Evaluate ``task`` (``repair``, ``detect``) into ``plan.task_dir(task)`` unless finished with these settings;
    its headline numbers go to ``status["evaluate_<task>"]``. Whether it evaluated."""
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.downstream import evaluate_downstream  # what evaluate_model runs for these tasks

    kwargs = {**evaluation, "task": task, "output_dir": plan.task_dir(task)}
    fingerprint = _canonical({**kwargs, "trained_at": status["train"].get("finished_at")})
    key = f"evaluate_{task}"
    done = status.get(key) or {}
    if done.get("state") == "done" and done.get("fingerprint") == fingerprint and os.path.isfile(
            os.path.join(plan.task_dir(task), "report.json")):
        return False
    print(f"[{plan.name}] evaluating --task {task}", flush=True)
    status[key] = {"state": "running", "fingerprint": fingerprint}
    save()
    start = time.perf_counter()
    report = evaluate_downstream(EvaluationConfig(**kwargs))  # code execution was allowed before the first run
    _free_memory()
    status[key] = {"state": "done", "fingerprint": fingerprint, "seconds": round(time.perf_counter() - start, 2),
                   "report": report.files.get("report"),
                   "metrics": _canonical({k: v for k, v in report.metrics.items() if not isinstance(v, dict)})}
    save()
    return True


def _run_reporting_failure(plan: RunPlan, recipe: dict[str, Any], evaluation: dict[str, Any]) -> RunOutcome:
    """:func:`run_one`, with any exception turned into a failed outcome (recorded in status.json)."""
    try:
        return run_one(plan, recipe, evaluation)
    except Exception as err:  # noqa: BLE001 - one failed run must not stop the others
        if not isinstance(err, UserError):  # a bug or a crash: the traceback helps; a user error is its one line
            traceback.print_exc(file=sys.stderr)
        status_path = os.path.join(plan.run_dir, "status.json")
        status = _read_json(status_path)
        for step in ("train", "evaluate", *(f"evaluate_{task}" for task in plan.downstream_tasks)):
            if (status.get(step) or {}).get("state") == "running":
                status[step].update(state="failed", error=_one_line(err))
                _write_json(status_path, status)
        _free_memory()
        return RunOutcome(plan, "failed", error=_one_line(err), status=status)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, UserError) else f"{type(err).__name__}: {text}"


# --------------------------------------------------------------------------------------------------
# the experiment
# --------------------------------------------------------------------------------------------------


def _resolved(config: ExperimentConfig, datasets: Mapping[str, str],
              extra_training: Mapping[str | None, Mapping[str, Any]]):
    """Every run's recipe and evaluation settings; each recipe parsed now, so a bad value stops the experiment
    before the first training instead of after it."""
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.training.recipe import parse_recipe

    resolved = []
    plans = config.runs()
    shown = list(dict.fromkeys([*([config.sweep] if config.sweep else []),
                                *(key for plan in plans for key in plan.variant.training)]))
    for plan in plans:
        plan.training.update(extra_training.get(plan.model, {}))
        recipe = plan.recipe(datasets[plan.train_dataset], config.train_split)
        evaluation = plan.evaluation_kwargs(datasets[plan.eval_dataset], config.eval_split)
        parsed = parse_recipe(recipe, [], source=f"recipe of variant {plan.variant.name!r}")
        # what the run trains with, defaults included (a variant that leaves alpha alone trains with alpha = 1);
        # an untuned run trains with nothing
        plan.settings = {key: None if plan.untuned else next(getattr(args, key) for args in parsed
                                                               if hasattr(args, key)) for key in shown}
        try:
            for task in plan.tasks:
                EvaluationConfig(**{**evaluation, "task": task})
        except (TypeError, ValueError) as err:
            raise UserError(f"variant {plan.variant.name!r} evaluation: {err}") from err
        resolved.append((plan, recipe, evaluation))
    return resolved


def check_inputs(runs) -> None:
    """Every dataset and model the runs read (an adapter a run trains itself apart) exists: a local path must be
    there, and a Hub id must be in the cache when the Hub cannot be reached. Runs before the first run, so a
    missing input stops the experiment at once instead of failing run after run.

    Raises:
        UserError: one line naming the first missing input and the variant that reads it.
    """
    from procure_trl.hub import require_local_or_hub

    wanted: dict[tuple[str, str], str] = {}
    for plan, recipe, evaluation in runs:
        for kind, name in (("dataset", recipe.get("dataset_name")), ("model", recipe.get("model_name_or_path")),
                           ("dataset", evaluation.get("dataset")), ("model", evaluation.get("model"))):
            if name and name != plan.train_dir:  # a run's own training output is made by the run
                wanted.setdefault((kind, str(name)), plan.variant.name)
    for (kind, name), variant in wanted.items():
        require_local_or_hub(name, kind, f"variant {variant!r}: {kind}", probe=True)


@contextlib.contextmanager
def _few_threads_for_a_tiny_model(active: bool):
    """The smoke model's matrices are too small for CPU threads to pay off; on a busy machine their waits cost
    seconds per forward pass (measured: 16 tokens for 8 prompts took 5.8 s with 2 threads, 0.8 s with one).
    The previous thread count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if active and not torch.cuda.is_available():
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_experiment(config: ExperimentConfig, *, smoke: bool = False) -> ExperimentResult:
    """Build the datasets, run every (variant, seed), then write the table, the comparison and the plots.

    Args:
        config: the experiment (``--smoke``: already its :meth:`~ExperimentConfig.smoke_version`).
        smoke: make the tiny local model for runs that name none (``config.smoke.training``).

    Raises:
        UserError: bad settings, a dataset that cannot be built, or code execution not allowed (checked before
            anything is trained: evaluation runs the model's programs).
    """
    from procure_trl.evaluation.run import require_code_execution_opt_in
    from procure_trl.experiments.table import write_experiment_report

    try:
        require_code_execution_opt_in()
    except PermissionError as err:
        raise UserError(str(err)) from err
    os.makedirs(config.output_dir, exist_ok=True)
    with _shipped_samples_unless_given(smoke):
        datasets = prepare_datasets(config)
        extra = _smoke_model(config) if smoke else {}
        runs = _resolved(config, datasets, extra)
        check_inputs(runs)
        outcomes = _run_all(runs, bool(extra))
    result = ExperimentResult(config, outcomes)
    result.files = write_experiment_report(result)
    return result


@contextlib.contextmanager
def _shipped_samples_unless_given(smoke: bool) -> Iterator[None]:
    """Under ``--smoke``, MBPP and CodeContests come from the rows shipped with the package
    (:data:`procure_trl.problems.SAMPLES_DIR`) unless ``$PROCURE_MBPP_DIR`` / ``$PROCURE_CODECONTESTS_FILE`` name
    other copies: a smoke run shows that the experiment connects, offline, and measures nothing."""
    from procure_trl.problems import CODECONTESTS_FILE_ENV, MBPP_DIR_ENV, SAMPLES_DIR

    defaults = {MBPP_DIR_ENV: str(SAMPLES_DIR / "mbpp"), CODECONTESTS_FILE_ENV: str(SAMPLES_DIR / "codecontests.jsonl")}
    added = [name for name in defaults if smoke and name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _run_all(runs: list, tiny_model: bool) -> list[RunOutcome]:
    """Every run in order; a failed run is reported and the others go on."""
    outcomes = []
    with _few_threads_for_a_tiny_model(tiny_model):
        for index, (plan, recipe, evaluation) in enumerate(runs, start=1):
            print(f"=== run {index}/{len(runs)}: {plan.name}", flush=True)
            outcome = _run_reporting_failure(plan, recipe, evaluation)
            if outcome.state == "failed":
                print(f"[{plan.name}] FAILED: {outcome.error}", flush=True)
            elif outcome.state == "skipped":
                print(f"[{plan.name}] finished earlier: skipped", flush=True)
            outcomes.append(outcome)
    return outcomes
