"""The concept-sensitive loss of ProCURE, as pure torch functions (no model, no transformers).

Per sample, over completion tokens ``t`` with ``delta_t = 1`` on perturbed tokens:

* original (no perturbed token): the usual completion-only NLL;
* counterfactual: ``L = L_token + lambda * L_att`` with
  ``L_token = sum_t w_t nll_t / sum_t w_t`` and
  ``L_att = - mean_q log(eps + m_q)``, ``q`` over completion positions at or after the first
  perturbed token, ``m_q`` the attention mass that query ``q`` puts on perturbed keys.

The paper's masked-token term reads two ways, chosen by ``token_loss``:

* ``"weighted"`` (default): every completion token counts, perturbed ones more: ``w_t = 1 + alpha * delta_t``;
* ``"perturbed_only"``: the NLL over the perturbed tokens only: ``w_t = delta_t`` on a counterfactual
  (``alpha`` plays no part); originals keep ``w_t = 1`` on every completion token.

Reduction over a batch, and over an accumulation window (several micro-batches, several processes):

    loss = sum_{tokens in window} w_t nll_t / sum_{tokens in window} w_t
         + lambda * sum_{counterfactuals in window} L_att,i / #counterfactuals in window

Why this one: (a) for a window of originals only, ``w_t = 1`` and the first term is exactly TRL's
``SFTTrainer`` loss (summed NLL over the window's label tokens divided by their number) and the second
is absent; (b) both terms are sums divided by totals of the whole window, so splitting the window
into micro-batches or across processes (each part divided by the same window totals, the parts then
summed) gives the same value and the same gradients; (c) a window holding one counterfactual is
exactly the per-sample formula above. Like ``SFTTrainer``, the token term is pooled over tokens (a
long program weighs more than a short one); the attention term is a mean over counterfactual
samples, so each counterfactual contributes one ``L_att`` whatever its length.

Shapes: ``labels`` and ``perturbation_mask`` are ``(batch, seq_len)`` over input tokens (labels
``-100`` where no loss is taken); ``nll`` is ``(batch, seq_len - 1)`` with ``nll[:, t]`` the loss of
predicting token ``t + 1`` (the causal-LM shift), zero where the label is ignored;
``attention_mass`` is ``(batch, seq_len)`` over query positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100
#: the two readings of the masked-token term (see the module docstring)
TOKEN_LOSSES = ("weighted", "perturbed_only")


@dataclass(frozen=True)
class LossNormalizer:
    """Totals over a whole accumulation window (all micro-batches, all processes).

    Attributes:
        token_weight: ``sum w_t`` over the window's label tokens (the token-term denominator).
        counterfactuals: number of counterfactual samples in the window (the attention-term
            denominator; 0 when the window holds only originals).
    """

    token_weight: torch.Tensor
    counterfactuals: torch.Tensor


@dataclass
class ConceptLossOutput:
    """The loss and its parts for one micro-batch.

    Attributes:
        loss: the value to back-propagate (already divided by the window totals).
        token_sum: ``sum w_t nll_t`` over the micro-batch.
        token_weight: ``sum w_t`` over the micro-batch.
        attention_sum: ``sum L_att,i`` over the micro-batch's counterfactuals (0 if none).
        counterfactuals: number of counterfactual samples in the micro-batch.
        perturbed_tokens: number of perturbed label tokens in the micro-batch.
        label_tokens: number of label tokens in the micro-batch.
    """

    loss: torch.Tensor
    token_sum: torch.Tensor
    token_weight: torch.Tensor
    attention_sum: torch.Tensor
    counterfactuals: torch.Tensor
    perturbed_tokens: torch.Tensor
    label_tokens: torch.Tensor


def _check_shapes(labels: torch.Tensor, perturbation_mask: torch.Tensor) -> None:
    if labels.dim() != 2 or labels.shape != perturbation_mask.shape:
        raise ValueError(
            f"labels {tuple(labels.shape)} and perturbation_mask {tuple(perturbation_mask.shape)} must both be "
            "(batch, seq_len): the mask is padded and truncated together with input_ids"
        )


def _check_token_loss(token_loss: str) -> None:
    if token_loss not in TOKEN_LOSSES:
        raise ValueError(f"token_loss={token_loss!r} is not one of {', '.join(TOKEN_LOSSES)}")


def token_weights(labels: torch.Tensor, perturbation_mask: torch.Tensor, alpha: float,
                  token_loss: str = "weighted") -> torch.Tensor:
    """``w_t`` on label tokens, 0 elsewhere; shape ``(batch, seq_len - 1)``.

    ``"weighted"``: ``1 + alpha * delta_t``; ``"perturbed_only"``: ``delta_t`` on counterfactual rows,
    1 on originals. Aligned with the shifted targets: entry ``t`` weighs the prediction of token ``t + 1``.
    """
    _check_shapes(labels, perturbation_mask)
    _check_token_loss(token_loss)
    target_is_label = labels[:, 1:] != IGNORE_INDEX
    delta = perturbation_mask[:, 1:].to(torch.float32)
    if token_loss == "weighted":
        return (1.0 + alpha * delta) * target_is_label
    counterfactual = is_counterfactual(labels, perturbation_mask)[:, None]
    return torch.where(counterfactual, delta, torch.ones_like(delta)) * target_is_label


def token_weight_total(label_tokens: float, perturbed_label_tokens: float, original_label_tokens: float,
                       alpha: float, token_loss: str = "weighted") -> float:
    """``sum w_t`` from counts (as the collator makes them on the CPU): all label tokens, the perturbed
    ones, and those of original rows (rows without a perturbed label token)."""
    _check_token_loss(token_loss)
    if token_loss == "weighted":
        return label_tokens + alpha * perturbed_label_tokens
    return original_label_tokens + perturbed_label_tokens


def attention_query_mask(labels: torch.Tensor, perturbation_mask: torch.Tensor) -> torch.Tensor:
    """Query positions of the attention term: completion positions at/after the first perturbed one.

    A completion position is one whose token carries a label (``labels != -100``); a perturbed
    token outside the completion (e.g. a prompt token of a hand-made mask) does not start the range.
    Returns a bool ``(batch, seq_len)``; a row is all False for an original sample.
    """
    _check_shapes(labels, perturbation_mask)
    completion = labels != IGNORE_INDEX
    perturbed = completion & perturbation_mask.bool()
    after_first = perturbed.to(torch.int32).cumsum(dim=1) > 0
    return completion & after_first


def is_counterfactual(labels: torch.Tensor, perturbation_mask: torch.Tensor) -> torch.Tensor:
    """``(batch,)`` bool: samples with at least one perturbed completion token."""
    _check_shapes(labels, perturbation_mask)
    return ((labels != IGNORE_INDEX) & perturbation_mask.bool()).any(dim=1)


def attention_loss_per_sample(
    attention_mass: torch.Tensor, query_mask: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """``L_att,i = - mean_{q in query_mask[i]} log(eps + m_q)``; 0 for rows without queries. ``(batch,)``."""
    if attention_mass.shape != query_mask.shape:
        raise ValueError(
            f"attention_mass {tuple(attention_mass.shape)} and query mask {tuple(query_mask.shape)} differ"
        )
    log_mass = torch.log(eps + attention_mass.float())
    # where() rather than multiply: log of a garbage mass at a padded query must not leak a NaN
    masked = torch.where(query_mask, log_mass, torch.zeros_like(log_mass))
    count = query_mask.sum(dim=1)
    return -masked.sum(dim=1) / count.clamp(min=1)


def window_normalizer(labels: torch.Tensor, perturbation_mask: torch.Tensor, alpha: float,
                      token_loss: str = "weighted") -> LossNormalizer:
    """The totals one micro-batch contributes to its window's :class:`LossNormalizer`."""
    return LossNormalizer(
        token_weight=token_weights(labels, perturbation_mask, alpha, token_loss).sum(),
        counterfactuals=is_counterfactual(labels, perturbation_mask).sum().to(torch.float32),
    )


def concept_sensitive_loss(
    nll: torch.Tensor,
    labels: torch.Tensor,
    perturbation_mask: torch.Tensor,
    attention_mass: torch.Tensor | None = None,
    *,
    alpha: float = 1.0,
    lam: float = 0.1,
    eps: float = 1e-6,
    normalizer: LossNormalizer | None = None,
    token_loss: str = "weighted",
) -> ConceptLossOutput:
    """The ProCURE loss of one micro-batch, divided by the window totals in ``normalizer``.

    Args:
        nll: ``(batch, seq_len - 1)`` per-token negative log-likelihood of the shifted targets, zero
            where the label is ignored (TRL's fused head: ``-outputs.log_probs``).
        labels: ``(batch, seq_len)`` labels, ``-100`` on prompt and padding tokens.
        perturbation_mask: ``(batch, seq_len)`` 0/1 per input token.
        attention_mass: ``(batch, seq_len)`` ``m_q`` averaged over heads and layers; required when
            ``lam > 0`` and the batch holds a counterfactual.
        alpha: extra weight of perturbed tokens in the token term (``w = 1 + alpha * delta``; unused
            with ``token_loss="perturbed_only"``).
        lam: weight of the attention term.
        eps: keeps ``log(eps + m_q)`` finite when a query ignores every perturbed token.
        normalizer: window totals; ``None`` uses this micro-batch's own totals (evaluation, or no
            gradient accumulation).
        token_loss: ``"weighted"`` (every completion token, weight ``1 + alpha * delta``) or
            ``"perturbed_only"`` (a counterfactual's NLL over its perturbed tokens only).
    """
    if lam < 0:
        raise ValueError(f"lam (concept_loss_weight) must be >= 0, got {lam}")
    if alpha < 0:
        raise ValueError(f"alpha (perturbed_token_weight) must be >= 0, got {alpha}")
    weights = token_weights(labels, perturbation_mask, alpha, token_loss)
    if nll.shape != weights.shape:
        raise ValueError(
            f"nll has shape {tuple(nll.shape)} but the shifted labels are {tuple(weights.shape)}; pass the per-token "
            "loss of predicting token t+1 from position t"
        )
    token_sum = (nll * weights).sum()
    token_weight = weights.sum()
    cf = is_counterfactual(labels, perturbation_mask)
    counterfactuals = cf.sum().to(torch.float32)
    # no data-dependent branch (each would be a device sync): originals have an empty query set and
    # contribute 0 through the `* cf` below
    if lam > 0 and attention_mass is not None:
        per_sample = attention_loss_per_sample(attention_mass, attention_query_mask(labels, perturbation_mask), eps)
        attention_sum = (per_sample * cf).sum()
    else:
        if lam > 0 and bool(cf.any()):
            raise ValueError("attention_mass is required when lam > 0 and the batch holds a counterfactual")
        attention_sum = token_sum.new_zeros(())
    if normalizer is None:
        normalizer = LossNormalizer(token_weight=token_weight.detach(), counterfactuals=counterfactuals)
    # every weighted token weighs >= 1, so the total is 0 or >= 1: clamping at 1 (as SFTTrainer does) only
    # turns a window without weighted tokens into a finite 0 instead of 0/0
    loss = token_sum / normalizer.token_weight.to(token_sum).clamp(min=1)
    if lam > 0:
        loss = loss + lam * attention_sum / normalizer.counterfactuals.to(token_sum).clamp(min=1)
    label_mask = labels[:, 1:] != IGNORE_INDEX
    return ConceptLossOutput(
        loss=loss,
        token_sum=token_sum,
        token_weight=token_weight,
        attention_sum=attention_sum,
        counterfactuals=counterfactuals,
        perturbed_tokens=(label_mask & perturbation_mask[:, 1:].bool()).sum(),
        label_tokens=label_mask.sum(),
    )
