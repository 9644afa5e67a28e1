"""A conversational dataset through `procure perturb --dataset`, then ConceptAwareSFTTrainer on the output as it is.

The perturbation mask must line up with what TRL's own chat-template tokenization gives for the row, and
cover exactly the tokens the perturbation changed.
"""

from __future__ import annotations

import json

import pytest

from procure_trl.testing_utils import TINY_CHAT_TEMPLATE

# The usual shape of a chat template: BOS, role headers, an end-of-turn token after each turn.

CODE = (
    "def running_total{k}(values):\n"
    "    total = 0\n"
    "    for value in values:\n"
    "        if value > 0:\n"
    "            total = total + value\n"
    "        else:\n"
    "            total = total - 1\n"
    "    return total\n"
)


def _rows():
    rows = []
    for k in range(4):
        answer = f"Sure. The function:\n```python\n{CODE.format(k=k)}```\nIt adds the positive values."
        rows.append({"messages": [{"role": "user", "content": f"Write running_total{k}(values)."},
                                  {"role": "assistant", "content": answer}]})
    return rows


@pytest.fixture(scope="module")
def chat_dataset(tmp_path_factory):
    from datasets import load_dataset

    from procure_trl.cli import main

    tmp = tmp_path_factory.mktemp("chat")
    source = tmp / "chat.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    assert main(["perturb", "--dataset", str(source), "--output-dir", str(tmp / "out")]) == 0
    # in memory: no datasets cache, so the trainer's tokenization is computed by this run's code
    return load_dataset(str(tmp / "out"), keep_in_memory=True)["train"]


@pytest.fixture(scope="module")
def chat_tokenizer():
    from procure_trl.testing_utils import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer("bpe", add_bos=True)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def test_output_is_a_messages_dataset(chat_dataset):
    assert chat_dataset.column_names[0] == "messages"
    assert {r["concept"] for r in chat_dataset} >= {"original", "if_else_flip", "name_random", "name_shuffle"}


def _sft_input_ids(rows, tokenizer, tmp_path):
    """TRL's own tokenization of the rows (a plain SFTTrainer)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from procure_trl.testing_utils import build_tiny_llama

    args = SFTConfig(output_dir=str(tmp_path / "sft"), report_to=[], bf16=False, use_cpu=True, max_length=None,
                     save_strategy="no")
    trainer = SFTTrainer(model=build_tiny_llama(tokenizer), args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list([{"messages": r["messages"]} for r in rows]))
    return trainer.train_dataset["input_ids"]


def test_concept_aware_trainer_trains_on_the_output_and_masks_only_changed_code(chat_dataset, chat_tokenizer,
                                                                                tmp_path):
    from procure_trl.testing_utils import build_tiny_llama
    from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

    args = ConceptAwareSFTConfig(output_dir=str(tmp_path / "out"), bf16=False, use_cpu=True, report_to=[],
                                 save_strategy="no", disable_tqdm=True, per_device_train_batch_size=4, max_steps=3,
                                 logging_steps=1, max_length=None, seed=0)
    trainer = ConceptAwareSFTTrainer(model=build_tiny_llama(chat_tokenizer), args=args,
                                     train_dataset=chat_dataset, processing_class=chat_tokenizer)
    result = trainer.train()
    assert trainer.state.global_step == 3 and result.training_loss == result.training_loss  # ran, loss not NaN
    assert any("loss_att" in entry for entry in trainer.state.log_history)  # counterfactuals reached the loss

    prepared = trainer.train_dataset
    rows = list(chat_dataset)
    assert prepared["input_ids"] == _sft_input_ids(rows, chat_tokenizer, tmp_path)  # TRL's tokens, one for one
    checked = 0
    for i, row in enumerate(rows):
        ids, mask = prepared["input_ids"][i], prepared["perturbation_mask"][i]
        # where each token's characters lie in the rendered chat, found by decoding (not from offset mappings)
        rendered = chat_tokenizer.apply_chat_template(row["messages"], tokenize=False)
        assert chat_tokenizer.decode(ids) == rendered
        ends = [len(chat_tokenizer.decode(ids[:j + 1])) for j in range(len(ids))]
        starts = [0] + ends[:-1]
        changed: set[int] = set()
        if row["concept"] != "original":
            content = row["messages"][row["changed_message"]]["content"]
            base = rendered.index(content, rendered.index("<|assistant|>"))
            changed = {base + c for s, e in row["changed_spans"] for c in range(s, e)}
            code = range(base + content.index("```python\n") + 10, base + content.index("```\n"))
            assert all(c in code for c in changed)  # the changes are inside the fenced code
        expected = [int(any(c in changed for c in range(a, b))) for a, b in zip(starts, ends)]
        assert mask == expected, (row["concept"], [chat_tokenizer.decode([t]) for t, m in zip(ids, mask) if m])
        checked += row["concept"] != "original" and sum(mask) > 0
    assert checked >= 12
