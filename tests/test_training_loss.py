"""The concept-sensitive loss as pure torch: values by hand, reduction invariance, errors."""

from __future__ import annotations

import math

import pytest
import torch

from procure_trl.training.loss import (
    LossNormalizer,
    attention_loss_per_sample,
    attention_query_mask,
    concept_sensitive_loss,
    is_counterfactual,
    token_weight_total,
    token_weights,
    window_normalizer,
)

IGN = -100


def _batch():
    # sample 0: original; sample 1: counterfactual, perturbed tokens at positions 3 and 4;
    # positions 0-1 are prompt (ignored), sample 1 has one padding position at the end.
    labels = torch.tensor([[IGN, IGN, 5, 6, 7, 8], [IGN, IGN, 5, 9, 9, IGN]])
    mask = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]])
    nll = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.5, 2.5, 3.5, 0.0]])
    mass = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.0, 0.0, 0.0, 0.5, 0.25, 0.9]])
    return nll, labels, mask, mass


def test_token_weights_follow_the_shifted_targets():
    _, labels, mask, _ = _batch()
    w = token_weights(labels, mask, alpha=2.0)
    assert w.tolist() == [[0, 1, 1, 1, 1], [0, 1, 3, 3, 0]]


def test_query_mask_starts_at_first_perturbed_completion_token():
    labels = torch.tensor([[IGN, IGN, 1, 1, 1, 1, IGN]])
    mask = torch.tensor([[1, 0, 0, 1, 0, 0, 0]])  # a perturbed prompt token does not start the range
    assert attention_query_mask(labels, mask).tolist() == [[False, False, False, True, True, True, False]]
    assert is_counterfactual(labels, mask).tolist() == [True]
    assert is_counterfactual(labels, torch.tensor([[1, 0, 0, 0, 0, 0, 0]])).tolist() == [False]


def test_attention_loss_by_hand():
    mass = torch.tensor([[0.5, 0.25, 0.9]])
    query = torch.tensor([[True, True, False]])
    eps = 1e-6
    expected = -(math.log(eps + 0.5) + math.log(eps + 0.25)) / 2
    assert attention_loss_per_sample(mass, query, eps).item() == pytest.approx(expected, rel=1e-6)
    # no queries: 0, not NaN, even if the mass there is garbage
    assert attention_loss_per_sample(torch.tensor([[float("nan")]]), torch.tensor([[False]])).item() == 0.0


def test_full_loss_by_hand():
    nll, labels, mask, mass = _batch()
    alpha, lam, eps = 1.0, 0.1, 1e-6
    out = concept_sensitive_loss(nll, labels, mask, mass, alpha=alpha, lam=lam, eps=eps)
    # token term: weights [0,1,1,1,1] and [0,1,2,2,0]
    token_sum = (1 + 2 + 3 + 4) + (1.5 + 2 * 2.5 + 2 * 3.5)
    weight_sum = 4 + 5
    att = -(math.log(eps + 0.5) + math.log(eps + 0.25)) / 2  # queries 3 and 4 of sample 1
    assert out.loss.item() == pytest.approx(token_sum / weight_sum + lam * att, rel=1e-6)
    assert out.counterfactuals.item() == 1
    assert out.perturbed_tokens.item() == 2 and out.label_tokens.item() == 7


def test_originals_only_is_the_mean_nll():
    nll, labels, _, mass = _batch()
    zeros = torch.zeros_like(labels)
    out = concept_sensitive_loss(nll, labels, zeros, mass, alpha=3.0, lam=0.5)
    label_mask = labels[:, 1:] != IGN
    assert out.loss.item() == pytest.approx((nll * label_mask).sum().item() / label_mask.sum().item(), rel=1e-7)
    # and it needs no attention mass
    assert concept_sensitive_loss(nll, labels, zeros, None, lam=0.5).loss.item() == pytest.approx(out.loss.item())


def test_window_reduction_is_invariant_to_the_split():
    torch.manual_seed(0)
    labels = torch.randint(3, 50, (6, 9))
    labels[:, :2] = IGN
    labels[1, 6:] = IGN
    mask = (torch.rand(6, 9) < 0.3).long()
    mask[0] = 0
    mask[4] = 0
    nll = torch.rand(6, 8, requires_grad=True)
    mass = torch.rand(6, 9, requires_grad=True)
    kwargs = dict(alpha=1.5, lam=0.3, eps=1e-6)
    whole = concept_sensitive_loss(nll, labels, mask, mass, **kwargs).loss
    g_whole = torch.autograd.grad(whole, (nll, mass))
    parts = [window_normalizer(labels[i : i + 2], mask[i : i + 2], 1.5) for i in range(0, 6, 2)]
    normalizer = LossNormalizer(
        token_weight=sum(p.token_weight for p in parts), counterfactuals=sum(p.counterfactuals for p in parts)
    )
    split = sum(
        concept_sensitive_loss(
            nll[i : i + 2], labels[i : i + 2], mask[i : i + 2], mass[i : i + 2], normalizer=normalizer, **kwargs
        ).loss
        for i in range(0, 6, 2)
    )
    g_split = torch.autograd.grad(split, (nll, mass))
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    for a, b in zip(g_whole, g_split):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bad_inputs_raise():
    nll, labels, mask, mass = _batch()
    with pytest.raises(ValueError, match="lam"):
        concept_sensitive_loss(nll, labels, mask, mass, lam=-0.1)
    with pytest.raises(ValueError, match="perturbation_mask"):
        concept_sensitive_loss(nll, labels, mask[:, :-1], mass)
    with pytest.raises(ValueError, match="attention_mass is required"):
        concept_sensitive_loss(nll, labels, mask, None, lam=0.1)
    with pytest.raises(ValueError, match="nll has shape"):
        concept_sensitive_loss(nll[:, :-1], labels, mask, mass)


def test_perturbed_only_reading_is_the_nll_of_the_perturbed_tokens():
    nll, labels, mask, mass = _batch()
    assert token_weights(labels, mask, 5.0, "perturbed_only").tolist() == [[0, 1, 1, 1, 1], [0, 0, 1, 1, 0]]
    lam, eps = 0.1, 1e-6
    out = concept_sensitive_loss(nll, labels, mask, mass, alpha=5.0, lam=lam, eps=eps, token_loss="perturbed_only")
    # original: all four completion predictions; counterfactual: only the two perturbed tokens (2.5, 3.5)
    token = ((1 + 2 + 3 + 4) + (2.5 + 3.5)) / (4 + 2)
    att = -(math.log(eps + 0.5) + math.log(eps + 0.25)) / 2
    assert out.loss.item() == pytest.approx(token + lam * att, rel=1e-6)
    # a counterfactual alone: the mean NLL over its perturbed tokens, whatever alpha
    alone = concept_sensitive_loss(nll[1:], labels[1:], mask[1:], None, alpha=0.0, lam=0.0, token_loss="perturbed_only")
    assert alone.loss.item() == pytest.approx((2.5 + 3.5) / 2, rel=1e-6)
    # the weighted reading of the same counterfactual differs
    weighted = concept_sensitive_loss(nll[1:], labels[1:], mask[1:], None, alpha=0.0, lam=0.0)
    assert weighted.loss.item() == pytest.approx((1.5 + 2.5 + 3.5) / 3, rel=1e-6)


@pytest.mark.parametrize("token_loss", ["weighted", "perturbed_only"])
def test_counts_give_the_same_window_weight_as_the_tensors(token_loss):
    _, labels, mask, _ = _batch()
    targets = labels[:, 1:] != IGN
    counterfactual = is_counterfactual(labels, mask)
    total = token_weight_total(int(targets.sum()), int((targets & mask[:, 1:].bool()).sum()),
                               int(targets[~counterfactual].sum()), 2.0, token_loss)
    assert total == window_normalizer(labels, mask, 2.0, token_loss).token_weight.item()
    with pytest.raises(ValueError, match="token_loss"):
        token_weights(labels, mask, 1.0, "perturbed")
