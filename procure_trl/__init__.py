"""procure_trl: ProCURE (concept-aware counterfactual fine-tuning of code LLMs) for Hugging Face TRL.

The public API. Names are imported lazily so that the analysis and perturbation side
(``procure perturb``) never imports torch, transformers or trl.
"""

from __future__ import annotations

from procure_trl._lazy import lazy_exports
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # procure_trl.concepts
    "Concept": "procure_trl.concepts",
    "ORIGINAL": "procure_trl.concepts",
    "UserConcept": "procure_trl.concepts",
    "register_concept": "procure_trl.concepts",
    "load_concept_rules": "procure_trl.perturbations.concept_rules",
    # procure_trl.problems
    "Problem": "procure_trl.problems",
    "InvalidProblem": "procure_trl.problems",
    "load_problems": "procure_trl.problems",
    "load_humaneval": "procure_trl.problems",
    "load_mbpp": "procure_trl.problems",
    "load_codecontests": "procure_trl.problems",
    "load_jsonl": "procure_trl.problems",
    "read_jsonl": "procure_trl.problems",
    "write_jsonl": "procure_trl.problems",
    # procure_trl.analysis
    "analyze": "procure_trl.analysis",
    "ProgramFacts": "procure_trl.analysis",
    "analyze_scopes": "procure_trl.analysis",
    "build_cfg": "procure_trl.analysis",
    "CFG": "procure_trl.analysis",
    # procure_trl.perturbations
    "perturb": "procure_trl.perturbations",
    "PERTURBATIONS": "procure_trl.perturbations",
    "PerturbationResult": "procure_trl.perturbations",
    "InvalidProgramError": "procure_trl.perturbations",
    "if_else_flip": "procure_trl.perturbations",
    "independent_swap": "procure_trl.perturbations",
    "def_use_break": "procure_trl.perturbations",
    "name_random": "procure_trl.perturbations",
    "name_shuffle": "procure_trl.perturbations",
    # procure_trl.validation
    "Validator": "procure_trl.validation",
    "ValidationConfig": "procure_trl.validation",
    "Candidate": "procure_trl.validation",
    "Verdict": "procure_trl.validation",
    "check_concept": "procure_trl.validation",
    # procure_trl.engine
    "generate_counterfactuals": "procure_trl.engine",
    "generate_to_jsonl": "procure_trl.engine",
    "format_bad_input": "procure_trl.engine",
    "GenerationConfig": "procure_trl.engine",
    "format_summary_table": "procure_trl.engine",
    # procure_trl.records
    "CounterfactualRecord": "procure_trl.records",
    "OutputConfig": "procure_trl.records",
    "PairRecord": "procure_trl.records",
    "RecordWriter": "procure_trl.records",
    "read_records": "procure_trl.records",
    "read_engine_jsonl": "procure_trl.records",
    "write_records": "procure_trl.records",
    # procure_trl.statuses
    "Stage": "procure_trl.statuses",
    # procure_trl.errors
    "UserError": "procure_trl.errors",
    # procure_trl.scale
    "DatasetPerturbConfig": "procure_trl.scale",
    "CounterfactualBatchTransform": "procure_trl.scale",
    "perturb_dataset": "procure_trl.scale",
    "detect_format": "procure_trl.scale",
    # procure_trl.execution
    "Executor": "procure_trl.execution",
    "ExecutionJob": "procure_trl.execution",
    "ExecutionLimits": "procure_trl.execution",
    "ExecutionResult": "procure_trl.execution",
    "execute": "procure_trl.execution",
    # procure_trl.llm.generator
    "LLMGenerator": "procure_trl.llm.generator",
    "LLMGeneratorConfig": "procure_trl.llm.generator",
    "format_llm_summary": "procure_trl.llm.generator",
    # procure_trl.llm.prompts
    "build_messages": "procure_trl.llm.prompts",
    # procure_trl.masks
    "spans_to_token_mask": "procure_trl.masks",
    "perturbation_mask": "procure_trl.masks",
    "prompt_completion_mask": "procure_trl.masks",
    "check_mask_alignment": "procure_trl.masks",
    # procure_trl.counterfactual_dataset
    "CONFIG_NAMES": "procure_trl.counterfactual_dataset",
    "build_rows": "procure_trl.counterfactual_dataset",
    "split_by_task": "procure_trl.counterfactual_dataset",
    "config_rows": "procure_trl.counterfactual_dataset",
    "add_token_columns": "procure_trl.counterfactual_dataset",
    "dataset_features": "procure_trl.counterfactual_dataset",
    "build_dataset_dict": "procure_trl.counterfactual_dataset",
    "load_dataset_split": "procure_trl.counterfactual_dataset",
    "records_from_rows": "procure_trl.counterfactual_dataset",
    # procure_trl.provenance
    "TRAINING_DATA_FILE": "procure_trl.provenance",
    "tokenizer_fingerprint": "procure_trl.provenance",
    "check_train_overlap": "procure_trl.provenance",
    "check_adapter_base": "procure_trl.provenance",
    # procure_trl.dataset_builder
    "BuildConfig": "procure_trl.dataset_builder",
    "build_counterfactual_dataset": "procure_trl.dataset_builder",
    # procure_trl.training
    "ConceptAwareSFTConfig": "procure_trl.training",
    "ConceptAwareSFTTrainer": "procure_trl.training",
    "DataCollatorForConceptLM": "procure_trl.training",
    "concept_sensitive_loss": "procure_trl.training",
    "register_concept_attention": "procure_trl.training",
    "enable_concept_attention": "procure_trl.training",
    "ConceptAttentionProbe": "procure_trl.training",
    # procure_trl.attention_report
    "AttentionReportConfig": "procure_trl.attention_report",
    "run_attention_report": "procure_trl.attention_report",
    # procure_trl.qlora
    "load_model_4bit": "procure_trl.qlora",
    "default_quantization_config": "procure_trl.qlora",
    "default_lora_config": "procure_trl.qlora",
    # procure_trl.metrics.pass_at_k
    "estimate_pass_at_k": "procure_trl.metrics.pass_at_k",
    "pass_at_k": "procure_trl.metrics.pass_at_k",
    # procure_trl.metrics.ccs
    "concept_consistency_score": "procure_trl.metrics.ccs",
    # procure_trl.metrics (the evaluate modules shipped with the package)
    "module_path": "procure_trl.metrics",
    # procure_trl.harness.config
    "EvaluationConfig": "procure_trl.harness.config",
    # procure_trl.harness.run
    "evaluate_model": "procure_trl.harness.run",
    "EvaluationReport": "procure_trl.harness.run",
    # procure_trl.experiments
    "ExperimentConfig": "procure_trl.experiments",
    "VariantConfig": "procure_trl.experiments",
    "ExperimentResult": "procure_trl.experiments",
    "load_experiment": "procure_trl.experiments",
    "run_experiment": "procure_trl.experiments",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs
    from procure_trl.concepts import Concept, ORIGINAL, UserConcept, register_concept
    from procure_trl.perturbations.concept_rules import load_concept_rules
    from procure_trl.problems import InvalidProblem, Problem, load_codecontests, load_humaneval, load_jsonl, load_mbpp, load_problems, read_jsonl, write_jsonl
    from procure_trl.analysis import CFG, ProgramFacts, analyze, analyze_scopes, build_cfg
    from procure_trl.perturbations import InvalidProgramError, PERTURBATIONS, PerturbationResult, def_use_break, if_else_flip, independent_swap, name_random, name_shuffle, perturb
    from procure_trl.validation import Candidate, ValidationConfig, Validator, Verdict, check_concept
    from procure_trl.engine import GenerationConfig, format_bad_input, format_summary_table, generate_counterfactuals, generate_to_jsonl
    from procure_trl.records import CounterfactualRecord, OutputConfig, PairRecord, RecordWriter, read_engine_jsonl, read_records, write_records
    from procure_trl.statuses import Stage
    from procure_trl.errors import UserError
    from procure_trl.scale import CounterfactualBatchTransform, DatasetPerturbConfig, detect_format, perturb_dataset
    from procure_trl.execution import ExecutionJob, ExecutionLimits, ExecutionResult, Executor, execute
    from procure_trl.llm.generator import LLMGenerator, LLMGeneratorConfig, format_llm_summary
    from procure_trl.llm.prompts import build_messages
    from procure_trl.masks import check_mask_alignment, perturbation_mask, prompt_completion_mask, spans_to_token_mask
    from procure_trl.counterfactual_dataset import CONFIG_NAMES, add_token_columns, build_dataset_dict, build_rows, config_rows, dataset_features, load_dataset_split, records_from_rows, split_by_task
    from procure_trl.provenance import TRAINING_DATA_FILE, check_adapter_base, check_train_overlap, tokenizer_fingerprint
    from procure_trl.dataset_builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.training import (
        ConceptAttentionProbe, ConceptAwareSFTConfig, ConceptAwareSFTTrainer, DataCollatorForConceptLM,
        concept_sensitive_loss, enable_concept_attention, register_concept_attention,
    )
    from procure_trl.attention_report import AttentionReportConfig, run_attention_report
    from procure_trl.qlora import default_lora_config, default_quantization_config, load_model_4bit
    from procure_trl.metrics.pass_at_k import estimate_pass_at_k, pass_at_k
    from procure_trl.metrics.ccs import concept_consistency_score
    from procure_trl.metrics import module_path
    from procure_trl.harness.config import EvaluationConfig
    from procure_trl.harness.run import EvaluationReport, evaluate_model
    from procure_trl.experiments import ExperimentConfig, ExperimentResult, VariantConfig, load_experiment, run_experiment
