"""procure_trl: ProCURE (concept-aware counterfactual fine-tuning of code LLMs) for Hugging Face TRL.

The public API. Names are imported lazily so that the analysis and perturbation side
(``procure perturb``) never imports torch, transformers or trl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from procure_trl._lazy import lazy_exports

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
    # procure_trl.perturb.engine
    "generate_counterfactuals": "procure_trl.perturb.engine",
    "generate_to_jsonl": "procure_trl.perturb.engine",
    "format_bad_input": "procure_trl.perturb.engine",
    "GenerationConfig": "procure_trl.perturb.engine",
    "format_summary_table": "procure_trl.perturb.engine",
    # procure_trl.perturb.records
    "CounterfactualRecord": "procure_trl.perturb.records",
    "OutputConfig": "procure_trl.perturb.records",
    "PairRecord": "procure_trl.perturb.records",
    "RecordWriter": "procure_trl.perturb.records",
    "read_records": "procure_trl.perturb.records",
    "read_engine_jsonl": "procure_trl.perturb.records",
    "write_records": "procure_trl.perturb.records",
    # procure_trl.statuses
    "Stage": "procure_trl.statuses",
    # procure_trl.errors
    "UserError": "procure_trl.errors",
    # procure_trl.perturb.scale
    "DatasetPerturbConfig": "procure_trl.perturb.scale",
    "CounterfactualBatchTransform": "procure_trl.perturb.scale",
    "perturb_dataset": "procure_trl.perturb.scale",
    "detect_format": "procure_trl.perturb.scale",
    # procure_trl.execution
    "Executor": "procure_trl.execution",
    "ExecutionJob": "procure_trl.execution",
    "ExecutionLimits": "procure_trl.execution",
    "ExecutionResult": "procure_trl.execution",
    "execute": "procure_trl.execution",
    # procure_trl.perturb.llm.generator
    "LLMGenerator": "procure_trl.perturb.llm.generator",
    "LLMGeneratorConfig": "procure_trl.perturb.llm.generator",
    "format_llm_summary": "procure_trl.perturb.llm.generator",
    # procure_trl.perturb.llm.prompts
    "build_messages": "procure_trl.perturb.llm.prompts",
    # procure_trl.dataset.masks
    "spans_to_token_mask": "procure_trl.dataset.masks",
    "perturbation_mask": "procure_trl.dataset.masks",
    "prompt_completion_mask": "procure_trl.dataset.masks",
    "check_mask_alignment": "procure_trl.dataset.masks",
    # procure_trl.dataset.rows
    "CONFIG_NAMES": "procure_trl.dataset.rows",
    "build_rows": "procure_trl.dataset.rows",
    "split_by_task": "procure_trl.dataset.rows",
    "config_rows": "procure_trl.dataset.rows",
    "add_token_columns": "procure_trl.dataset.rows",
    "dataset_features": "procure_trl.dataset.rows",
    "build_dataset_dict": "procure_trl.dataset.rows",
    "load_dataset_split": "procure_trl.dataset.rows",
    "records_from_rows": "procure_trl.dataset.rows",
    # procure_trl.provenance
    "TRAINING_DATA_FILE": "procure_trl.provenance",
    "tokenizer_fingerprint": "procure_trl.provenance",
    "check_train_overlap": "procure_trl.evaluation.guards",
    "check_adapter_base": "procure_trl.evaluation.guards",
    # procure_trl.dataset.builder
    "BuildConfig": "procure_trl.dataset.builder",
    "build_counterfactual_dataset": "procure_trl.dataset.builder",
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
    # procure_trl.training.qlora
    "load_model_4bit": "procure_trl.training.qlora",
    "default_quantization_config": "procure_trl.training.qlora",
    "default_lora_config": "procure_trl.training.qlora",
    # procure_trl.metrics.pass_at_k
    "estimate_pass_at_k": "procure_trl.metrics.pass_at_k",
    "pass_at_k": "procure_trl.metrics.pass_at_k",
    # procure_trl.metrics.ccs
    "concept_consistency_score": "procure_trl.metrics.ccs",
    # procure_trl.metrics (the evaluate modules shipped with the package)
    "module_path": "procure_trl.metrics",
    # procure_trl.evaluation.config
    "EvaluationConfig": "procure_trl.evaluation.config",
    # procure_trl.evaluation.run
    "evaluate_model": "procure_trl.evaluation.run",
    "EvaluationReport": "procure_trl.evaluation.results",
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
    from procure_trl.analysis import CFG, ProgramFacts, analyze, analyze_scopes, build_cfg
    from procure_trl.attention_report import AttentionReportConfig, run_attention_report
    from procure_trl.concepts import ORIGINAL, Concept, UserConcept, register_concept
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.dataset.masks import (
        check_mask_alignment,
        perturbation_mask,
        prompt_completion_mask,
        spans_to_token_mask,
    )
    from procure_trl.dataset.rows import (
        CONFIG_NAMES,
        add_token_columns,
        build_dataset_dict,
        build_rows,
        config_rows,
        dataset_features,
        load_dataset_split,
        records_from_rows,
        split_by_task,
    )
    from procure_trl.errors import UserError
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.guards import check_adapter_base, check_train_overlap
    from procure_trl.evaluation.results import EvaluationReport
    from procure_trl.evaluation.run import evaluate_model
    from procure_trl.execution import ExecutionJob, ExecutionLimits, ExecutionResult, Executor, execute
    from procure_trl.experiments import (
        ExperimentConfig,
        ExperimentResult,
        VariantConfig,
        load_experiment,
        run_experiment,
    )
    from procure_trl.metrics import module_path
    from procure_trl.metrics.ccs import concept_consistency_score
    from procure_trl.metrics.pass_at_k import estimate_pass_at_k, pass_at_k
    from procure_trl.perturb.engine import (
        GenerationConfig,
        format_bad_input,
        format_summary_table,
        generate_counterfactuals,
        generate_to_jsonl,
    )
    from procure_trl.perturb.llm.generator import LLMGenerator, LLMGeneratorConfig, format_llm_summary
    from procure_trl.perturb.llm.prompts import build_messages
    from procure_trl.perturb.records import (
        CounterfactualRecord,
        OutputConfig,
        PairRecord,
        RecordWriter,
        read_engine_jsonl,
        read_records,
        write_records,
    )
    from procure_trl.perturb.scale import (
        CounterfactualBatchTransform,
        DatasetPerturbConfig,
        detect_format,
        perturb_dataset,
    )
    from procure_trl.perturbations import (
        PERTURBATIONS,
        InvalidProgramError,
        PerturbationResult,
        def_use_break,
        if_else_flip,
        independent_swap,
        name_random,
        name_shuffle,
        perturb,
    )
    from procure_trl.perturbations.concept_rules import load_concept_rules
    from procure_trl.problems import (
        InvalidProblem,
        Problem,
        load_codecontests,
        load_humaneval,
        load_jsonl,
        load_mbpp,
        load_problems,
        read_jsonl,
        write_jsonl,
    )
    from procure_trl.provenance import TRAINING_DATA_FILE, tokenizer_fingerprint
    from procure_trl.statuses import Stage
    from procure_trl.training import (
        ConceptAttentionProbe,
        ConceptAwareSFTConfig,
        ConceptAwareSFTTrainer,
        DataCollatorForConceptLM,
        concept_sensitive_loss,
        enable_concept_attention,
        register_concept_attention,
    )
    from procure_trl.training.qlora import default_lora_config, default_quantization_config, load_model_4bit
    from procure_trl.validation import Candidate, ValidationConfig, Validator, Verdict, check_concept
