"""prompt_completion_mask tokenizes rows exactly as TRL's SFTTrainer does, so masks line up with training input."""

from __future__ import annotations

import pytest

from procure_trl.dataset.masks import prompt_completion_mask
from procure_trl.testing_utils import TINY_CHAT_TEMPLATE

# A minimal chat template in the usual shape: BOS, role headers, an end-of-turn token after each turn.

PROMPT = "Write a python function to add two numbers.\n"
COMPLETION = "def add(a, b):\n    total = a + b\n    return total\n"
# the counterfactual renamed `total` (both occurrences)
SPANS = [[COMPLETION.index("total"), COMPLETION.index("total") + 5],
         [COMPLETION.rindex("total"), COMPLETION.rindex("total") + 5]]


def _sft_input_ids(tokenizer, row, tmp_path):
    """What SFTTrainer itself produces for one row."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from procure_trl.testing_utils import build_tiny_llama

    args = SFTConfig(output_dir=str(tmp_path), report_to=[], bf16=False, max_length=None, logging_strategy="no",
                     save_strategy="no")
    trainer = SFTTrainer(model=build_tiny_llama(tokenizer), args=args, train_dataset=Dataset.from_list([row]),
                         processing_class=tokenizer)
    example = trainer.train_dataset[0]
    return example["input_ids"], example["labels"] if "labels" in example else None


def _marked_text(tokenizer, ids, mask):
    return tokenizer.decode([t for t, m in zip(ids, mask) if m])


@pytest.mark.parametrize("add_bos", [False, True], ids=["plain", "bos"])
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_plain_prompt_completion_matches_sft_trainer(kind, add_bos, tmp_path):
    from procure_trl.testing_utils import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(kind, add_bos=add_bos)
    out = prompt_completion_mask(PROMPT, COMPLETION, SPANS, tokenizer)
    sft_ids, labels = _sft_input_ids(tokenizer, {"prompt": PROMPT, "completion": COMPLETION}, tmp_path)

    assert out["input_ids"] == sft_ids
    assert len(out["perturbation_mask"]) == len(sft_ids) == len(out["completion_mask"])
    assert out["input_ids"][-1] == tokenizer.eos_token_id  # TRL appends EOS to the completion
    if add_bos:
        assert out["input_ids"][0] == tokenizer.bos_token_id and out["perturbation_mask"][0] == 0
    # TRL trains on completion tokens only: its labels are -100 exactly where our completion_mask is 0
    assert [label != -100 for label in labels] == [bool(m) for m in out["completion_mask"]]
    # perturbed tokens are completion tokens, and they spell the renamed variable
    assert all(c for c, p in zip(out["completion_mask"], out["perturbation_mask"]) if p)
    assert sum(out["perturbation_mask"]) >= 2
    assert _marked_text(tokenizer, out["input_ids"], out["perturbation_mask"]).replace(" ", "").count("total") == 2


@pytest.mark.parametrize("add_bos", [False, True], ids=["plain", "bos"])
def test_chat_template_matches_sft_trainer(add_bos, tmp_path):
    from procure_trl.testing_utils import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer("bpe", add_bos=add_bos)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    out = prompt_completion_mask(PROMPT, COMPLETION, SPANS, tokenizer, chat_template=True)
    row = {
        "prompt": [{"role": "user", "content": PROMPT}], "completion": [{"role": "assistant", "content": COMPLETION}]
    }
    sft_ids, labels = _sft_input_ids(tokenizer, row, tmp_path)

    assert out["input_ids"] == sft_ids
    assert out["input_ids"][0] == tokenizer.bos_token_id and out["perturbation_mask"][0] == 0
    assert [label != -100 for label in labels] == [bool(m) for m in out["completion_mask"]]
    assert _marked_text(tokenizer, out["input_ids"], out["perturbation_mask"]).replace(" ", "").count("total") == 2


def test_chat_template_locates_completion_even_when_prompt_quotes_it():
    from procure_trl.testing_utils import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer("bpe")
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    prompt = "Rename variables in:\n" + COMPLETION  # the same code appears in the prompt first
    out = prompt_completion_mask(prompt, COMPLETION, SPANS, tokenizer, chat_template=True)
    # all perturbed tokens are in the assistant turn, none in the quoted copy
    assert all(c for c, p in zip(out["completion_mask"], out["perturbation_mask"]) if p)
    assert sum(out["perturbation_mask"]) >= 2


def test_errors(tiny_tokenizer):
    with pytest.raises(ValueError, match="completion_spans: span #0 .* outside the text"):
        prompt_completion_mask(PROMPT, "x = 1\n", [[2, 40]], tiny_tokenizer)
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        prompt_completion_mask(PROMPT, COMPLETION, [], tiny_tokenizer, chat_template=True)


def test_original_row_has_empty_mask(tiny_tokenizer):
    out = prompt_completion_mask(PROMPT, COMPLETION, [], tiny_tokenizer)
    assert set(out["perturbation_mask"]) == {0} and len(out["perturbation_mask"]) == len(out["input_ids"])
