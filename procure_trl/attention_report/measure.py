"""Per-layer attention mass, through the probe the trainer's loss uses.

``m_q`` comes from :class:`~procure_trl.training.ConceptAttentionProbe` and the registered
concept-aware SDPA function (:mod:`procure_trl.training.attention`), the very computation behind the
attention term of the loss; here it is read per layer instead of averaged over the selected layers.
The control is the same computation with the control's key mask in place of the perturbation mask, in
the same forward pass: the probe carries both masks, each one more value channel of the same SDPA call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from procure_trl.training.attention import ConceptAttentionProbe

__all__ = ["layer_masses", "mean_over_queries", "measure_batch"]


def layer_masses(model, batch: dict[str, torch.Tensor], key_masks: Sequence[torch.Tensor],
                 layers: Sequence[int]) -> torch.Tensor:
    """``(key masks, layers, batch, length)``: ``m_q`` of every query position for the keys of each of
    ``key_masks``, all from one forward pass.

    ``model`` must run the concept-aware attention (:func:`~procure_trl.training.enable_concept_attention`).
    """
    probe = ConceptAttentionProbe(key_masks[0], layers, extra_masks=key_masks[1:])
    with torch.no_grad():
        # logits_to_keep=1: the report needs no logits, and a real vocabulary's logits are the largest tensor
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], concept_probe=probe, logits_to_keep=1)
    return torch.stack([torch.stack(list(probe.layer_mass(i).values())) for i in range(len(key_masks))])


def mean_over_queries(mass: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """``(layers, batch)``: each row's mean of ``m_q`` over its queries (``mass`` is ``(layers, batch, length)``)."""
    queries = query_mask.to(mass.dtype)
    return (mass * queries).sum(dim=-1) / queries.sum(dim=-1).clamp(min=1)


def measure_batch(model, batch: dict[str, torch.Tensor], layers: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per row and layer, ``(layers, batch)`` each, for a batch from
    :func:`~procure_trl.attention_report.examples.collate_left` (already on the model's device):

    * ``perturbed``: mean ``m_q`` over the attention term's queries (the quantity of the loss);
    * ``perturbed_matched`` and ``control``: mean mass on the perturbed tokens and on the control over the
      matched queries (0 for a row without matched queries).
    """
    perturbed, control = layer_masses(model, batch, [batch["perturbation_mask"], batch["control_mask"]], layers)
    return {
        "perturbed": mean_over_queries(perturbed, batch["query_mask"]),
        "perturbed_matched": mean_over_queries(perturbed, batch["matched_query_mask"]),
        "control": mean_over_queries(control, batch["matched_query_mask"]),
    }
