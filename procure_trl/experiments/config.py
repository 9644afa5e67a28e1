"""What an experiment runs: :class:`ExperimentConfig` (variants x seeds), read from a YAML file.

An experiment trains every variant with every seed on the ``train`` split of a counterfactual dataset
(``procure train``'s library) and evaluates it on the ``test`` split (``procure evaluate``'s library). The YAML
file holds the settings shared by all variants (``training``: recipe fields; ``evaluation``: fields of
:class:`~procure_trl.evaluation.config.EvaluationConfig`), the datasets, and per variant what differs. Every key
is checked against the field names before anything runs, so a typo is one line with the closest known name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from procure_trl.errors import UserError, did_you_mean

__all__ = [
    "ExperimentConfig",
    "VariantConfig",
    "SmokeConfig",
    "RunPlan",
    "load_experiment",
    "EXPERIMENT_SET_TRAINING",
    "EXPERIMENT_SET_EVALUATION",
]

#: Recipe fields the experiment sets itself for each run (a YAML file that sets them is refused).
EXPERIMENT_SET_TRAINING = ("output_dir", "dataset_name", "dataset_train_split", "seed")
#: Evaluation fields the experiment sets itself for each run.
EXPERIMENT_SET_EVALUATION = ("model", "adapter", "dataset", "split", "output_dir", "counterfactuals", "task",
                             "mutants")

#: What ``--smoke`` changes by default: a few steps on the CPU, a few problems, short completions.
SMOKE_TRAINING: dict[str, Any] = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_length": 384,
    "logging_steps": 1,
    "save_strategy": "no",
    "eval_strategy": "no",
    "report_to": "none",
    "load_in_4bit": False,
    "gradient_checkpointing": False,
    "bf16": False,
    "dtype": "float32",
    "warmup_steps": 0,
    "disable_tqdm": True,
}
SMOKE_EVALUATION: dict[str, Any] = {
    "limit": 2,
    "n": 1,
    "k": [1],
    "max_new_tokens": 16,
    "batch_size": 8,
    "n_bootstrap": 200,
    "num_workers": 2,
    "backend": "transformers",
    "dtype": "float32",
    "load_in_4bit": False,
}
SMOKE_BUILD: dict[str, Any] = {"limit": 10}


def _check_names(names: Iterable[str], known: Iterable[str], where: str, hint: str) -> None:
    """Refuse the first name not in ``known`` as one line with the closest known name and ``hint``."""
    known = list(known)
    for name in names:
        if name not in known:
            raise UserError(f"{where}: unknown field {name!r}{did_you_mean(str(name), known)}; {hint}")


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"{where} must be a mapping of field: value lines, got {type(value).__name__}")
    return dict(value)


def _check_section(values: Mapping[str, Any], where: str, known: Iterable[str], hint: str,
                   set_by_experiment: Iterable[str], how: str) -> None:
    """Refuse unknown keys of a ``training``/``evaluation`` section, and the keys the experiment sets per run."""
    _check_names(values, known, where, hint)
    taken = [name for name in values if name in set_by_experiment]
    if taken:
        raise UserError(f"{where}: {taken[0]!r} is set by the experiment for each run ({how}); remove it")


def _check_training_keys(values: Mapping[str, Any], where: str) -> None:
    from procure_trl.training.recipe_fields import recipe_field_names

    _check_section(values, where, recipe_field_names(), "`procure train --show-options` lists every recipe field",
                   EXPERIMENT_SET_TRAINING,
                   "dataset_name from `datasets`, seed from `seeds`, output_dir under the experiment's output_dir")


def _check_evaluation_keys(values: Mapping[str, Any], where: str) -> None:
    from procure_trl.evaluation.config import EvaluationConfig

    _check_section(values, where, _field_names(EvaluationConfig), "`procure evaluate --help` lists every field",
                   EXPERIMENT_SET_EVALUATION,
                   "the trained model or adapter, the dataset's eval split, a folder under output_dir, the task from "
                   "tasks")


def _check_build_keys(values: Mapping[str, Any], where: str) -> None:
    from procure_trl.dataset.builder import BuildConfig

    _check_names(values, _field_names(BuildConfig), where, "`procure build --help` lists every field")


@dataclass
class VariantConfig:
    r"""One training variant: what it changes in the experiment's shared settings.

    Parameters:
        name (`str`):
            Short name of the variant; its runs go to `OUTPUT/runs/<name>/seed-<seed>`.
        description (`str`, defaults to `""`):
            What the variant tests, in words (shown in the table).
        training (`dict[str, Any]`, *optional*):
            Recipe fields (`procure train`) set over the experiment's `training`, e.g. `concept_loss_weight: 0`.
        evaluation (`dict[str, Any]`, *optional*):
            Evaluation fields (`procure evaluate`) set over the experiment's `evaluation`.
        train_dataset (`str`, *optional*):
            Name of the entry of `datasets` trained on; `None`: the experiment's `train_dataset`.
        eval_dataset (`str`, *optional*):
            Name of the entry of `datasets` evaluated on; `None`: the experiment's `eval_dataset`.
        untuned (`bool`, defaults to `False`):
            Train nothing: evaluate the base model (`model_name_or_path`) as it is, once per seed, on the same
            split as the others (the row that shows what fine-tuning adds at all). It takes no `training` fields.
    """

    name: str = field(metadata={"help": "short name of the variant (its folder under OUTPUT/runs)"})
    description: str = field(default="", metadata={"help": "what the variant tests, in words"})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "recipe fields set over the experiment's training"}
    )
    evaluation: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "evaluation fields set over the experiment's evaluation"}
    )
    train_dataset: str | None = field(default=None, metadata={"help": "entry of datasets trained on"})
    eval_dataset: str | None = field(default=None, metadata={"help": "entry of datasets evaluated on"})
    untuned: bool = field(default=False, metadata={"help": "evaluate the base model untrained (no training fields)"})

    def __post_init__(self) -> None:
        where = f"variant {self.name!r}"
        if not isinstance(self.untuned, bool):
            raise UserError(f"{where}: untuned must be true or false, got {self.untuned!r}")
        if self.untuned and self.training:
            raise UserError(f"{where} is untuned (trains nothing) but sets training fields "
                            f"({', '.join(map(str, self.training))}); remove them")
        if not self.name or not str(self.name).replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UserError(f"{where}: a variant name is letters, digits, '-', '_' or '.' (it names a folder)")
        self.training = _mapping(self.training, f"{where} training")
        self.evaluation = _mapping(self.evaluation, f"{where} evaluation")
        _check_training_keys(self.training, f"{where} training")
        _check_evaluation_keys(self.evaluation, f"{where} evaluation")


@dataclass
class SmokeConfig:
    r"""What ``--smoke`` changes: a tiny local model, a few steps and a few problems, so the whole experiment runs
    on a CPU in minutes. Each mapping is merged key by key over the defaults.

    Parameters:
        training (`dict[str, Any]`, *optional*):
            Recipe fields set over every run's recipe (default: 2 steps, batch 2, `max_length` 384, float32, no
            4-bit). Without `model_name_or_path` here, a tiny random Llama is made in `OUTPUT/tiny-model`.
        evaluation (`dict[str, Any]`, *optional*):
            Evaluation fields set over every run's evaluation (default: 2 problems, `n` 1, 16 new tokens).
        build (`dict[str, Any]`, *optional*):
            `procure build` fields set over every dataset the experiment builds (default: `limit` 10 problems per
            benchmark); the smoke datasets go to `OUTPUT/datasets/<name>`.
        seeds (`list[int]`, *optional*):
            Seeds of the smoke run; `None`: the experiment's first seed only.
        models (`list[str]`, *optional*):
            Entries of the experiment's `models` the smoke run keeps (each gets a tiny random model of its own);
            `None`: every entry.
    """

    training: dict[str, Any] = field(default_factory=dict, metadata={"help": "recipe fields set by --smoke"})
    evaluation: dict[str, Any] = field(default_factory=dict, metadata={"help": "evaluation fields set by --smoke"})
    build: dict[str, Any] = field(default_factory=dict, metadata={"help": "procure build fields set by --smoke"})
    seeds: list[int] | None = field(default=None, metadata={"help": "smoke seeds (default: the first seed)"})
    models: list[str] | None = field(default=None, metadata={"help": "entries of models kept (default: all)"})

    def __post_init__(self) -> None:
        self.training = {**SMOKE_TRAINING, **_mapping(self.training, "smoke training")}
        self.evaluation = {**SMOKE_EVALUATION, **_mapping(self.evaluation, "smoke evaluation")}
        self.build = {**SMOKE_BUILD, **_mapping(self.build, "smoke build")}
        _check_training_keys(self.training, "smoke training")
        _check_evaluation_keys(self.evaluation, "smoke evaluation")
        _check_build_keys(self.build, "smoke build")


@dataclass
class RunPlan:
    """One (variant, seed) run as it will be executed: every setting resolved.

    Attributes:
        variant: the variant.
        seed: the training seed.
        run_dir: ``OUTPUT/runs/<variant>/seed-<seed>``; holds ``recipe.yaml``, ``status.json``, ``train/``
            (the adapter or model) and ``evaluation/`` (``procure evaluate``'s output).
        train_dataset / eval_dataset: names of the entries of ``datasets``.
        training: the recipe fields of this run, except those that the experiment sets once the datasets exist
            (``dataset_name``, ``dataset_train_split``, ``output_dir``, ``seed``: see :meth:`recipe`).
        evaluation: the evaluation fields of this run, except model, adapter, dataset, split and output folder.
        settings: the values the run trains with of the fields some variant sets, defaults included (filled when
            the recipe is parsed; the table shows them).
        model: the entry of the experiment's ``models`` this run fine-tunes (``None`` without ``models``).
    """

    variant: VariantConfig
    seed: int
    run_dir: str
    train_dataset: str
    eval_dataset: str
    training: dict[str, Any]
    evaluation: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    tasks: list[str] = field(default_factory=lambda: ["generate"])

    @property
    def name(self) -> str:
        return f"{self.model + '/' if self.model else ''}{self.variant.name}/seed-{self.seed}"

    @property
    def train_dir(self) -> str:
        return os.path.join(self.run_dir, "train")

    @property
    def evaluation_dir(self) -> str:
        return os.path.join(self.run_dir, "evaluation")

    @property
    def downstream_tasks(self) -> list[str]:
        """The tasks besides ``generate`` this run is evaluated on (``repair``, ``detect``)."""
        return [task for task in self.tasks if task != "generate"]

    def task_dir(self, task: str) -> str:
        """Where the evaluation of ``task`` goes: ``evaluation/`` for ``generate``, else ``evaluation-<task>/``."""
        return self.evaluation_dir if task == "generate" else os.path.join(self.run_dir, f"evaluation-{task}")

    @property
    def untuned(self) -> bool:
        """The base model evaluated as it is: no training."""
        return self.variant.untuned

    @property
    def uses_adapter(self) -> bool:
        """LoRA training saves an adapter, evaluated on top of the base model; full fine-tuning saves a model."""
        return not self.untuned and bool(self.training.get("use_peft") or self.training.get("load_in_4bit"))

    def recipe(self, dataset_path: str, train_split: str) -> dict[str, Any]:
        """The ``procure train`` recipe of this run (written to ``run_dir/recipe.yaml``)."""
        return {**self.training, "dataset_name": dataset_path, "dataset_train_split": train_split,
                "output_dir": self.train_dir, "seed": self.seed}

    def evaluation_kwargs(self, dataset_path: str, eval_split: str) -> dict[str, Any]:
        """Keyword arguments of this run's :class:`~procure_trl.evaluation.config.EvaluationConfig`."""
        model = self.training["model_name_or_path"]
        if self.untuned:
            trained = {"model": model}
        else:
            trained = {"model": model, "adapter": self.train_dir} if self.uses_adapter else {"model": self.train_dir}
        return {**self.evaluation, **trained, "dataset": dataset_path, "split": eval_split,
                "output_dir": self.evaluation_dir}


@dataclass
class ExperimentConfig:
    r"""An experiment: training variants x seeds, each trained on one dataset's train split and evaluated on a test
    split, then compared (``procure experiment --config FILE.yaml``).

    Parameters:
        name (`str`, *optional*):
            Name of the experiment (titles); `None`: the YAML file's name.
        description (`str`, defaults to `""`):
            What the experiment asks, in words.
        output_dir (`str`, defaults to `"outputs/experiments/experiment"`):
            Where the datasets it builds, the runs, the table and the plots go; `--smoke` uses `<output_dir>-smoke`.
        datasets (`dict[str, Any]`):
            Named counterfactual datasets. Each is a local folder or Hub id of an existing dataset, or a mapping of
            `procure build` fields (e.g. `{benchmarks: humaneval}`) built once into its `output_dir` (default:
            `OUTPUT/datasets/<name>`) and reused afterwards.
        train_dataset (`str`, *optional*):
            The entry of `datasets` variants train on unless they say otherwise; `None`: the first entry.
        eval_dataset (`str`, *optional*):
            The entry of `datasets` variants are evaluated on unless they say otherwise; `None`: the train dataset.
        train_split (`str`, defaults to `"train"`):
            Split trained on.
        eval_split (`str`, defaults to `"test"`):
            Split evaluated on (tasks disjoint from the train split's).
        seeds (`list[int]`, defaults to `[0]`):
            Training seeds; every variant is trained once per seed.
        training (`dict[str, Any]`, *optional*):
            Recipe fields (`procure train --show-options`) shared by every variant.
        evaluation (`dict[str, Any]`, *optional*):
            `procure evaluate` fields shared by every variant (e.g. `n`, `k`, `temperature`).
        variants (`list[VariantConfig]`):
            The variants, in table order.
        baseline (`str`, *optional*):
            The variant every other variant is compared with: variant seed `s` against the baseline's seed `s`
            of the same model, on the same tasks; `None`: the first variant.
        models (`dict[str, str]`, *optional*):
            Named base models (name: Hub id or folder). Every variant x seed runs once per model (runs go to
            `OUTPUT/runs/<model>/<variant>/seed-<seed>`) and the table has one block per model; `None`: the one
            `model_name_or_path` of `training`.
        sweep (`str`, *optional*):
            A recipe field the variants vary (e.g. `concept_loss_weight`): the plots put its value on the x axis.
        tasks (`list[str]`, defaults to `["generate"]`):
            The `procure evaluate --task` values every run is evaluated on: `generate` (always; the table's pass@k
            and CCS), plus `repair` and/or `detect` on the eval dataset's `mutants` config (build it with the
            `mutants` field of `procure build`; docs/downstream.md). Each goes to `evaluation-<task>/` of the run.
        smoke (`SmokeConfig`, *optional*):
            What `--smoke` changes (tiny local model, few steps, few problems).
    """

    datasets: dict[str, Any] = field(metadata={"help": "named datasets: an existing one or procure build fields"})
    variants: list[VariantConfig] = field(metadata={"help": "the training variants, in table order"})
    baseline: str | None = field(default=None, metadata={"help": "variant the others are compared with (default: "
                                                                  "the first)"})
    models: dict[str, str] | None = field(default=None, metadata={"help": "named base models: one block each"})
    name: str | None = field(default=None, metadata={"help": "name of the experiment (default: the file name)"})
    description: str = field(default="", metadata={"help": "what the experiment asks"})
    output_dir: str = field(
        default="outputs/experiments/experiment", metadata={"help": "where datasets, runs, table and plots go"}
    )
    train_dataset: str | None = field(default=None, metadata={"help": "dataset trained on (default: the first)"})
    eval_dataset: str | None = field(default=None, metadata={"help": "dataset evaluated on (default: train's)"})
    train_split: str = field(default="train", metadata={"help": "split trained on"})
    eval_split: str = field(default="test", metadata={"help": "split evaluated on"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "training seeds"})
    training: dict[str, Any] = field(default_factory=dict, metadata={"help": "recipe fields shared by every variant"})
    evaluation: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "evaluation fields shared by every variant"}
    )
    sweep: str | None = field(default=None, metadata={"help": "recipe field on the x axis of the sweep plot"})
    tasks: list[str] = field(default_factory=lambda: ["generate"], metadata={
        "help": "evaluation tasks of every run: generate, plus repair and/or detect"})
    smoke: SmokeConfig = field(default_factory=SmokeConfig, metadata={"help": "what --smoke changes"})

    def __post_init__(self) -> None:
        self.training = _mapping(self.training, "training")
        self.evaluation = _mapping(self.evaluation, "evaluation")
        _check_training_keys(self.training, "training")
        _check_evaluation_keys(self.evaluation, "evaluation")
        self.datasets = _mapping(self.datasets, "datasets")
        if not self.datasets:
            raise UserError("datasets is empty: name at least one counterfactual dataset (a folder, a Hub id, or "
                            "procure build fields such as {benchmarks: humaneval})")
        for name, spec in self.datasets.items():
            if isinstance(spec, Mapping):
                _check_build_keys(spec, f"datasets {name}")
            elif not isinstance(spec, str):
                raise UserError(f"datasets {name}: give a folder or Hub id, or a mapping of procure build fields")
        self.train_dataset = self.train_dataset or next(iter(self.datasets))
        self.eval_dataset = self.eval_dataset or self.train_dataset
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise UserError(f"seeds={self.seeds!r}: give a list of integers, e.g. [0, 1, 2]")
        if not self.variants:
            raise UserError("variants is empty: list at least one variant (name and its training fields)")
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise UserError(f"variant name {repeated[0]!r} is used twice; each variant needs its own name")
        for variant in self.variants:
            for role in ("train_dataset", "eval_dataset"):
                chosen = getattr(variant, role) or getattr(self, role)
                if chosen not in self.datasets:
                    raise UserError(f"variant {variant.name!r}: {role} {chosen!r} is not in datasets"
                                    f"{did_you_mean(str(chosen), self.datasets)} (names: {', '.join(self.datasets)})")
        if self.sweep is not None:
            _check_training_keys({self.sweep: None}, "sweep")
        self._check_tasks()
        self._check_baseline_and_models(names)
        if self.models:
            return
        if "model_name_or_path" not in self.training and not all(
            "model_name_or_path" in v.training for v in self.variants
        ):
            raise UserError("training sets no model_name_or_path: name the model every variant fine-tunes")

    def _check_tasks(self) -> None:
        if not isinstance(self.tasks, list) or not self.tasks:
            raise UserError(f"tasks={self.tasks!r}: give a list, e.g. [generate, repair, detect]")
        known = ("generate", "repair", "detect")
        for task in self.tasks:
            if task not in known:
                raise UserError(f"tasks: unknown task {task!r}{did_you_mean(str(task), known)}; use "
                                f"{', '.join(known)}")
        if "generate" not in self.tasks:
            raise UserError("tasks: generate is always evaluated (the table's pass@k and CCS): add it, e.g. "
                            "[generate, repair]")
        self.tasks = list(dict.fromkeys(self.tasks))

    def _check_baseline_and_models(self, names: list[str]) -> None:
        self.baseline = self.baseline or names[0]
        if self.baseline not in names:
            raise UserError(f"baseline {self.baseline!r} is not a variant{did_you_mean(str(self.baseline), names)} "
                            f"(variants: {', '.join(names)})")
        if self.models is None:
            return
        self.models = _mapping(self.models, "models")
        if not self.models or not all(isinstance(v, str) and v for v in self.models.values()):
            raise UserError("models: give name: Hub id (or folder) lines, e.g. {llama: meta-llama/Llama-3.1-8B}")
        for name in self.models:
            if not str(name).replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise UserError(f"models: {name!r} names a folder: use letters, digits, '-', '_' or '.'")
        set_model = [v.name for v in self.variants if "model_name_or_path" in v.training]
        if "model_name_or_path" in self.training or set_model:
            raise UserError(f"{'variant ' + repr(set_model[0]) if set_model else 'training'} sets model_name_or_path"
                            " although models names the base models: remove it (each run takes its model's)")
        for name in self.smoke.models or []:
            if name not in self.models:
                raise UserError(f"smoke models: {name!r} is not in models{did_you_mean(str(name), self.models)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "experiment") -> ExperimentConfig:
        """Build the config from a parsed YAML mapping, refusing unknown keys at every level."""
        data = _mapping(data, source)
        _check_names(data, _field_names(cls), source, "docs/experiments.md lists every field")
        values = dict(data)
        variants = values.get("variants") or []
        if not isinstance(variants, list):
            raise UserError(f"{source}: variants must be a list of mappings (- name: ...)")
        built = []
        for index, item in enumerate(variants):
            where = f"{source}: variant {index + 1}"
            item = _mapping(item, where)
            _check_names(item, _field_names(VariantConfig), where, "a variant has " + ", ".join(
                _field_names(VariantConfig)))
            if "name" not in item:
                raise UserError(f"{where} has no name")
            built.append(VariantConfig(**item))
        values["variants"] = built
        if "smoke" in values:
            smoke = _mapping(values["smoke"], f"{source}: smoke")
            _check_names(smoke, _field_names(SmokeConfig), f"{source}: smoke", "smoke has " + ", ".join(
                _field_names(SmokeConfig)))
            values["smoke"] = SmokeConfig(**smoke)
        for required in ("datasets", "variants"):
            if required not in data:
                raise UserError(f"{source}: {required} is missing")
        return cls(**values)

    def smoke_version(self) -> ExperimentConfig:
        """The same experiment as ``--smoke`` runs it: ``smoke``'s settings over every run, a separate output folder,
        and every dataset the experiment builds limited and built under that folder (existing ones are kept)."""
        output_dir = f"{self.output_dir.rstrip('/')}-smoke"
        datasets = {
            name: {**spec, **self.smoke.build, "output_dir": os.path.join(output_dir, "datasets", name)}
            if isinstance(spec, Mapping) else spec
            for name, spec in self.datasets.items()
        }
        models = ({name: self.models[name] for name in (self.smoke.models or self.models)}
                  if self.models else None)
        return dataclasses.replace(
            self,
            output_dir=output_dir,
            models=models,
            datasets=datasets,
            seeds=list(self.smoke.seeds or self.seeds[:1]),
            training={**self.training, **self.smoke.training},
            evaluation={**self.evaluation, **self.smoke.evaluation},
            variants=[
                dataclasses.replace(v, training={} if v.untuned else {**v.training, **self.smoke.training},
                                    evaluation={**v.evaluation, **self.smoke.evaluation})
                for v in self.variants
            ],
        )

    def dataset_build_dir(self, name: str) -> str | None:
        """Where the dataset ``name`` is built (``None``: an existing dataset, not built here)."""
        spec = self.datasets[name]
        if not isinstance(spec, Mapping):
            return None
        return str(spec.get("output_dir") or os.path.join(self.output_dir, "datasets", name))

    def runs(self) -> list[RunPlan]:
        """Every (model, variant, seed) run: models in order, then variants, then seeds."""
        plans = []
        models: dict[str | None, dict[str, Any]] = (
            {name: {"model_name_or_path": hub_id} for name, hub_id in self.models.items()} if self.models
            else {None: {}})
        for model, model_training in models.items():
            for variant in self.variants:
                for seed in self.seeds:
                    plans.append(RunPlan(
                        variant=variant,
                        seed=seed,
                        run_dir=os.path.join(self.output_dir, "runs", *([model] if model else []), variant.name,
                                             f"seed-{seed}"),
                        train_dataset=variant.train_dataset or str(self.train_dataset),
                        eval_dataset=variant.eval_dataset or str(self.eval_dataset),
                        training={**self.training, **model_training, **variant.training},
                        evaluation={**self.evaluation, **variant.evaluation},
                        model=model,
                        tasks=list(self.tasks),
                    ))
        return plans


def load_experiment(path: str) -> ExperimentConfig:
    """Read an experiment YAML file; bad keys and values are one-line :class:`UserError`\\ s naming the file
    (:meth:`ExperimentConfig.smoke_version` gives what ``--smoke`` runs)."""
    from procure_trl.configs import load_yaml_config

    data = load_yaml_config("experiments", path)
    data = dict(data)
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    try:
        config = ExperimentConfig.from_dict(data, source=path)
    except UserError as err:
        message = str(err)
        raise UserError(message if message.startswith(path) else f"{path}: {message}") from None
    except TypeError as err:  # a value of the wrong shape the dataclasses could not take
        raise UserError(f"{path}: {err}") from None
    return config
