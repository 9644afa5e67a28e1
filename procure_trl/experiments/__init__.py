"""Experiments: training variants x seeds, each trained on a counterfactual dataset's train split and evaluated on
its test split, collected into one table and plots (``procure experiment --config experiments/<name>.yaml``)."""

from procure_trl.experiments.config import ExperimentConfig, RunPlan, SmokeConfig, VariantConfig, load_experiment
from procure_trl.experiments.results import ExperimentResult, RunOutcome
from procure_trl.experiments.runner import run_experiment

__all__ = ["ExperimentConfig", "ExperimentResult", "RunOutcome", "RunPlan", "SmokeConfig", "VariantConfig",
           "load_experiment", "run_experiment"]
