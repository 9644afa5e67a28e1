"""Concept-aware supervised fine-tuning: config, loss, attention, collator and trainer.

``loss`` and the probe in ``attention`` are plain torch; ``ConceptAwareSFTTrainer`` and
``ConceptAwareSFTConfig`` bring in transformers and TRL, so they are imported lazily.
"""

from __future__ import annotations

from procure_trl._lazy import lazy_exports

_EXPORTS = {
    "ConceptAwareSFTConfig": "procure_trl.training.config",
    "resolve_attention_layers": "procure_trl.training.config",
    "ConceptAwareSFTTrainer": "procure_trl.training.trainer",
    "DataCollatorForConceptLM": "procure_trl.training.collator",
    "ConceptAttentionProbe": "procure_trl.training.attention",
    "CONCEPT_ATTENTION_NAME": "procure_trl.training.attention",
    "concept_sdpa_attention_forward": "procure_trl.training.attention",
    "register_concept_attention": "procure_trl.training.attention",
    "enable_concept_attention": "procure_trl.training.attention",
    "disable_concept_attention": "procure_trl.training.attention",
    "concept_sensitive_loss": "procure_trl.training.loss",
    "attention_loss_per_sample": "procure_trl.training.loss",
    "attention_query_mask": "procure_trl.training.loss",
    "token_weights": "procure_trl.training.loss",
    "LossNormalizer": "procure_trl.training.loss",
    "ConceptLossOutput": "procure_trl.training.loss",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
