"""ConceptAwareSFTTrainer against an independent eager reference, against SFTTrainer, and under
gradient accumulation; the mask through TRL's preparation; clear errors on bad input."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from training_ddp_worker import make_rows
from trl import SFTConfig, SFTTrainer

from procure_trl.testing_utils import build_tiny_llama
from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

LAMBDA, ALPHA, EPS = 0.1, 1.0, 1e-6


def _config(tmp_path, **overrides) -> ConceptAwareSFTConfig:
    values = dict(
        output_dir=str(tmp_path / "out"),
        bf16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        per_device_train_batch_size=4,
        concept_loss_weight=LAMBDA,
        perturbed_token_weight=ALPHA,
        attention_loss_eps=EPS,
        seed=0,
    )
    values.update(overrides)
    return ConceptAwareSFTConfig(**values)


def _trainer(tmp_path, tokenizer, rows, **overrides):
    return ConceptAwareSFTTrainer(
        build_tiny_llama(tokenizer), args=_config(tmp_path, **overrides), train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def _batch(trainer, indices):
    return trainer.data_collator([trainer.train_dataset[i] for i in indices])


def _trainer_loss(trainer, batch):
    trainer.model.train()
    normalizer = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    return trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=normalizer)


def _reference_loss(tokenizer, batch, layers=(0, 1), token_loss="weighted"):
    """The ProCURE loss written out independently: eager attention, materialised probabilities."""
    model = build_tiny_llama(tokenizer, attn_implementation="eager").train()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    labels, delta = batch["labels"], batch["perturbation_mask"].float()
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    valid = target != -100
    nll = -logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * valid
    if token_loss == "weighted":
        weights = (1 + ALPHA * delta[:, 1:]) * valid
    else:  # a counterfactual row: its perturbed tokens only; an original row: every completion token
        rows_with_change = ((labels != -100) & (delta == 1)).any(dim=1, keepdim=True)
        weights = torch.where(rows_with_change, delta[:, 1:], torch.ones_like(delta[:, 1:])) * valid
    token_term = (weights * nll).sum() / weights.sum()
    att_terms = []
    for b in range(labels.shape[0]):
        completion = (labels[b] != -100).nonzero().flatten().tolist()
        perturbed = [t for t in completion if delta[b, t] == 1]
        if not perturbed:
            continue
        queries = [q for q in completion if q >= perturbed[0]]
        logs = []
        for q in queries:
            mass = 0.0
            for layer in layers:
                probs = out.attentions[layer][b, :, q, :]  # heads x keys
                mass = mass + (probs * delta[b]).sum(-1).mean() / len(layers)
            logs.append(torch.log(EPS + mass))
        att_terms.append(-torch.stack(logs).mean())
    att_term = torch.stack(att_terms).mean() if att_terms else torch.zeros(())
    return token_term + LAMBDA * att_term, token_term, att_term


def test_loss_equals_independent_eager_reference(tmp_path, tiny_tokenizer):
    rows = make_rows()
    trainer = _trainer(tmp_path, tiny_tokenizer, rows)
    # one counterfactual alone: the per-sample formula L_token + lambda * L_att
    single = _batch(trainer, [1])
    expected, token_term, att_term = _reference_loss(tiny_tokenizer, single)
    assert att_term.item() > 0.1  # the attention term is really there
    torch.testing.assert_close(_trainer_loss(trainer, single), expected, rtol=1e-5, atol=1e-5)
    # a padded batch mixing originals and counterfactuals: the documented window reduction
    mixed = _batch(trainer, [0, 1, 2, 5])
    assert mixed["attention_mask"].eq(0).any()
    expected, _, _ = _reference_loss(tiny_tokenizer, mixed)
    torch.testing.assert_close(_trainer_loss(trainer, mixed), expected, rtol=1e-5, atol=1e-5)


def test_reference_with_top_layer_only(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, make_rows(), attention_layers=1)
    assert trainer.attention_layers == [1]
    batch = _batch(trainer, [1, 3])
    expected, _, _ = _reference_loss(tiny_tokenizer, batch, layers=(1,))
    torch.testing.assert_close(_trainer_loss(trainer, batch), expected, rtol=1e-5, atol=1e-5)


def test_originals_only_batch_equals_sft_trainer(tmp_path, tiny_tokenizer):
    rows = make_rows(include_counterfactuals=False)
    trainer = _trainer(tmp_path, tiny_tokenizer, rows)
    sft = SFTTrainer(
        build_tiny_llama(tiny_tokenizer),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), bf16=False, use_cpu=True, report_to=[], save_strategy="no"),
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "completion")} for r in rows]),
        processing_class=tiny_tokenizer,
    )
    # same tokenization as TRL's own
    assert [r["input_ids"] for r in trainer.train_dataset] == [r["input_ids"] for r in sft.train_dataset]
    assert [r["labels"] for r in trainer.train_dataset] == [r["labels"] for r in sft.train_dataset]
    batch = _batch(trainer, range(4))
    ours = _trainer_loss(trainer, batch)
    sft.model.train()
    sft_batch = sft.data_collator([sft.train_dataset[i] for i in range(4)])
    theirs = sft.compute_loss(
        sft.model, sft_batch, num_items_in_batch=sft._get_num_items_in_batch([sft_batch], torch.device("cpu"))
    )
    assert abs(ours.item() - theirs.item()) < 1e-6


def test_perturbed_only_reading_equals_the_reference(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, make_rows(), token_loss="perturbed_only")
    mixed = _batch(trainer, [0, 1, 2, 5])
    expected, _, _ = _reference_loss(tiny_tokenizer, mixed, token_loss="perturbed_only")
    weighted, _, _ = _reference_loss(tiny_tokenizer, mixed)
    assert abs(expected.item() - weighted.item()) > 1e-3  # the two readings differ on this batch
    torch.testing.assert_close(_trainer_loss(trainer, mixed), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_plain_sft_setting_trains_exactly_like_sft_trainer(tmp_path, tiny_tokenizer):
    """lambda = alpha = 0 on a data set with counterfactuals: the same logged training losses as TRL's
    SFTTrainer on the same rows, seed and steps (the plain-SFT variant of an ablation)."""
    rows = make_rows()
    steps = dict(max_steps=3, per_device_train_batch_size=2, learning_rate=1e-2, logging_steps=1, seed=0)
    ours = _trainer(tmp_path, tiny_tokenizer, rows, concept_loss_weight=0.0, perturbed_token_weight=0.0, **steps)
    sft = SFTTrainer(
        build_tiny_llama(tiny_tokenizer),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), bf16=False, use_cpu=True, report_to=[], save_strategy="no",
                       disable_tqdm=True, **steps),
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "completion")} for r in rows]),
        processing_class=tiny_tokenizer,
    )
    ours.train()
    sft.train()
    losses = [[log["loss"] for log in t.state.log_history if "loss" in log] for t in (ours, sft)]
    assert len(losses[0]) == 3 and losses[0][0] != losses[0][-1]  # it trained
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def _train_one_step(tmp_path, tokenizer, rows, batch_size, grad_accum, name):
    trainer = _trainer(
        tmp_path / name, tokenizer, rows, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum, max_steps=1, learning_rate=1.0, optim="sgd",
        lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0,
        logging_steps=1,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    # SGD with lr=1: the parameter change is minus the accumulated gradient
    grads = {n: before[n] - p.detach() for n, p in trainer.model.named_parameters()}
    loss = next(log["loss"] for log in trainer.state.log_history if "loss" in log)
    return loss, grads, trainer


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_tokenizer):
    rows = make_rows()[2:6]  # 2 originals, 2 counterfactuals of different lengths
    loss_big, grads_big, trainer = _train_one_step(tmp_path, tiny_tokenizer, rows, 4, 1, "big")
    loss_acc, grads_acc, _ = _train_one_step(tmp_path, tiny_tokenizer, rows, 1, 4, "acc")
    assert math.isfinite(loss_big) and abs(loss_big - loss_acc) < 1e-5
    assert any(g.abs().sum() > 0 for g in grads_big.values())
    for name in grads_big:
        torch.testing.assert_close(grads_acc[name], grads_big[name], rtol=1e-4, atol=1e-5, msg=name)
    logged = trainer.state.log_history[0]
    assert {"loss_token", "loss_att", "perturbed_token_fraction", "entropy", "mean_token_accuracy"} <= logged.keys()
    assert 0 < logged["perturbed_token_fraction"] < 1
    assert logged["loss"] == pytest.approx(logged["loss_token"] + LAMBDA * logged["loss_att"], rel=1e-5)


def test_mask_survives_truncation_and_padding(tmp_path, tiny_tokenizer):
    rows = make_rows()
    trainer = _trainer(tmp_path, tiny_tokenizer, rows, max_length=20)
    for row in trainer.train_dataset:
        assert len(row["perturbation_mask"]) == len(row["input_ids"]) == len(row["labels"]) <= 20
        assert not any(m and label == -100 for m, label in zip(row["perturbation_mask"], row["labels"]))
    # the mask marks exactly the renamed identifiers' tokens of row 1
    row = trainer.train_dataset[1]
    text = "".join(tiny_tokenizer.decode([t]) for t, m in zip(row["input_ids"], row["perturbation_mask"]) if m)
    assert set(text) <= set("xy ")
    batch = _batch(trainer, range(len(trainer.train_dataset)))
    assert batch["perturbation_mask"].shape == batch["input_ids"].shape
    assert batch["perturbation_mask"][batch["attention_mask"] == 0].sum() == 0


def test_pretokenized_rows_are_accepted(tmp_path, tiny_tokenizer):
    from procure_trl.dataset.masks import prompt_completion_mask

    tokenized = []
    for r in make_rows():
        t = prompt_completion_mask(r["prompt"], r["completion"], r["changed_spans"], tiny_tokenizer)
        tokenized.append(t)
    trainer = _trainer(tmp_path, tiny_tokenizer, tokenized, completion_only_loss=True)
    spans_trainer = _trainer(tmp_path / "s", tiny_tokenizer, make_rows())
    for a, b in zip(trainer.train_dataset, spans_trainer.train_dataset):
        assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
        assert a["perturbation_mask"] == b["perturbation_mask"]


@pytest.mark.parametrize("pretokenized", [False, True])
def test_cached_rows_are_keyed_on_the_procure_trl_version(tmp_path, tiny_tokenizer, monkeypatch, pretokenized):
    """datasets caches each map under a fingerprint: a procure_trl that tokenizes, masks or checks rows
    differently must not reuse the rows an older one cached."""
    import procure_trl
    from procure_trl.dataset.masks import prompt_completion_mask

    rows = make_rows()[:4]
    if pretokenized:
        rows = [prompt_completion_mask(r["prompt"], r["completion"], r["changed_spans"], tiny_tokenizer) for r in rows]

    def fingerprint() -> str:
        return _trainer(tmp_path, tiny_tokenizer, rows, max_length=64).train_dataset._fingerprint

    first = fingerprint()
    assert fingerprint() == first  # otherwise the key is stable: the cache is used
    monkeypatch.setattr(procure_trl, "__version__", procure_trl.__version__ + ".post1")
    assert fingerprint() != first


def test_missing_columns_fail_before_a_model_given_by_name_is_loaded(tmp_path, tiny_tokenizer):
    from datasets import Dataset

    plain = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in make_rows()])
    # the model path does not exist: loading it would fail with an OSError instead
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['changed_spans'\]"):
        ConceptAwareSFTTrainer(str(tmp_path / "no-model"), args=_config(tmp_path), train_dataset=plain,
                               processing_class=tiny_tokenizer)


def test_bad_input_gives_clear_errors(tmp_path, tiny_tokenizer):
    plain = [{"prompt": r["prompt"], "completion": r["completion"]} for r in make_rows()]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['changed_spans'\].*procure build"):
        _trainer(tmp_path, tiny_tokenizer, plain)
    with pytest.raises(ValueError, match="no 'perturbation_mask' column"):
        _trainer(tmp_path, tiny_tokenizer, [{"input_ids": [3, 4, 5]}])
    with pytest.raises(ValueError, match="row 1.*2 entries but there are 3 tokens"):
        _trainer(tmp_path, tiny_tokenizer, [{"input_ids": [3, 4, 5], "perturbation_mask": [0, 0, 1]},
                                            {"input_ids": [3, 4, 5], "perturbation_mask": [0, 1]}])
    with pytest.raises(ValueError, match="concept_loss_weight"):
        _config(tmp_path, concept_loss_weight=-0.5)
    with pytest.raises(ValueError, match="layer index 7, out of range .* 2 decoder layers"):
        _trainer(tmp_path, tiny_tokenizer, make_rows(), attention_layers=[0, 7])
    with pytest.raises(ValueError, match="top 3 layers but the model has 2"):
        _trainer(tmp_path, tiny_tokenizer, make_rows(), attention_layers="3")
    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        ConceptAwareSFTTrainer(
            build_tiny_llama(tiny_tokenizer, attn_implementation="eager"), args=_config(tmp_path),
            train_dataset=Dataset.from_list(make_rows()), processing_class=tiny_tokenizer,
        )
    bad_span = [{"prompt": "p\n", "completion": "x = 1\n", "changed_spans": [[3, 40]]}]
    with pytest.raises(ValueError, match="row 0.*outside the text"):
        _trainer(tmp_path, tiny_tokenizer, bad_span)


def test_attention_layers_command_line_forms(tmp_path):
    assert _config(tmp_path, attention_layers="all").attention_layers is None
    assert _config(tmp_path, attention_layers="2").attention_layers == 2
    assert _config(tmp_path, attention_layers="0,-1").attention_layers == [0, -1]
    assert _config(tmp_path, attention_layers="[1]").attention_layers == [1]


def test_evaluate_logs_the_concept_metrics_and_sft_config_is_converted(tmp_path, tiny_tokenizer):
    rows = make_rows()
    args = SFTConfig(output_dir=str(tmp_path / "o"), bf16=False, use_cpu=True, report_to=[], save_strategy="no",
                     per_device_eval_batch_size=4, disable_tqdm=True)
    trainer = ConceptAwareSFTTrainer(
        build_tiny_llama(tiny_tokenizer), args=args, train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer,
    )
    assert isinstance(trainer.args, ConceptAwareSFTConfig) and trainer.args.concept_loss_weight == 0.1
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    assert metrics["eval_loss_att"] > 0 and 0 < metrics["eval_perturbed_token_fraction"] < 1
