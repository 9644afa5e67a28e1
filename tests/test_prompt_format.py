"""One prompt format from training to evaluation: what the model reads for a task is the start of what it trained on.

Every original program of HumanEval and MBPP (all 974 when the full copy is present, the fixture rows otherwise) is
made into a training row (:func:`procure_trl.dataset.prompt_format.training_example`), tokenized by the trainer's own
path (:func:`procure_trl.training.data.tokenize_concept_row`), and compared with the tokens the harness gives the model
for that task (:func:`procure_trl.dataset.prompt_format.model_input_ids` of its request prompt): in both formats, with a
tokenizer that has a chat template and one that has none.
"""

from __future__ import annotations

import ast

import pytest

from procure_trl.dataset.prompt_format import (
    CHAT_INSTRUCTION,
    TaskText,
    check_format,
    decode_request,
    model_input_ids,
    original_prefix,
    render_request,
    request_prompt,
    training_example,
)
from procure_trl.testing_utils import TINY_CHAT_TEMPLATE
from procure_trl.training.data import tokenize_concept_row

#: (prompt format, does the tokenizer have a chat template): chat needs one, completion works with either.
CASES = [("completion", False), ("completion", True), ("chat", True)]


@pytest.fixture(scope="module")
def originals():
    from procure_trl.problems import load_problems

    return load_problems("humaneval") + load_problems("mbpp")


@pytest.fixture(scope="module")
def tokenizers():
    from procure_trl.testing_utils import build_tiny_tokenizer

    # BOS in front of every plain text, as Llama tokenizers do: the special tokens of both sides must agree too.
    plain = build_tiny_tokenizer("bpe", add_bos=True)
    chat = build_tiny_tokenizer("bpe", add_bos=True)
    chat.chat_template = TINY_CHAT_TEMPLATE
    return {False: plain, True: chat}


def _trained_ids(row, tokenizer):
    out = tokenize_concept_row(dict(row), 0, tokenizer=tokenizer, spans_column="changed_spans", mask_column="mask")
    return out["input_ids"], out["completion_mask"]


@pytest.mark.parametrize("fmt,template", CASES, ids=[f"{f}-{'template' if t else 'no-template'}" for f, t in CASES])
def test_the_evaluation_prompt_is_a_token_prefix_of_every_original_training_row(originals, tokenizers, fmt, template):
    tokenizer = tokenizers[template]
    failures = []
    for problem in originals:
        task = TaskText.from_problem(problem)
        row = training_example(fmt, task, problem.program)
        ids, completion_mask = _trained_ids(row, tokenizer)
        read = model_input_ids(tokenizer, request_prompt(fmt, task, original_prefix(fmt, task)))
        # the prompt tokens are exactly what the model reads, and the loss starts right after them
        if ids[: len(read)] != read or completion_mask.index(1) != len(read):
            failures.append(problem.task_id)
    assert not failures, f"{len(failures)} of {len(originals)} rows: {failures[:5]}"


@pytest.mark.parametrize("fmt", ["completion", "chat"])
def test_every_original_row_is_well_formed(originals, fmt):
    for problem in originals:
        task = TaskText.from_problem(problem)
        row = training_example(fmt, task, problem.program)
        if fmt == "completion":
            # the program start the harness gives the model, then the rest: the program byte for byte
            assert row["prompt"] == problem.prompt and row["prompt"] + row["completion"] == problem.program
            assert row["prompt"].endswith("\n")  # no statement glued to the first line of code
            ast.parse(row["prompt"] + row["completion"])
        else:
            (user,), (assistant,) = row["prompt"], row["completion"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            assert assistant["content"] == problem.program  # the answer is the program, nothing before it
            assert user["content"] == f"{task.statement}\n\n{CHAT_INSTRUCTION}\n{problem.prompt}"
        assert row["changed_spans"] == []


def test_a_counterfactual_change_in_the_task_prompt_moves_into_the_completion():
    # a helper given in the prompt (as HumanEval/38 gives encode_cyclic) changed by the counterfactual
    prompt = 'def helper(s):\n    return s[::-1]\n\n\ndef f(s):\n    """Doc."""\n'
    original = prompt + "    return helper(s)\n"
    code = original.replace("s[::-1]", "s[::-2]")
    start = code.index("s[::-2]")
    task = TaskText("T/0", prompt, "Doc.")
    row = training_example("completion", task, code, [[start, start + 7]])
    assert row["prompt"] + row["completion"] == code and row["prompt"] == "def helper(s):\n"
    (s, e), = row["changed_spans"]
    assert row["completion"][s:e] == "s[::-2]"


def test_chat_requests_render_the_same_user_turn_and_continue_the_assistant_turn(tokenizers):
    tokenizer = tokenizers[True]
    task = TaskText("T/0", "def f(x):\n", "Return x.")
    cut = "def f(x):\n    return"
    head, rest = render_request(tokenizer, request_prompt("chat", task, cut))
    trained_head = tokenizer.apply_chat_template(training_example("chat", task, cut + " x\n")["prompt"],
                                                 tokenize=False, add_generation_prompt=True)
    assert head == trained_head and rest == cut  # the cut program opens the assistant turn, unclosed
    assert decode_request(request_prompt("chat", task, cut)) == (
        f"Return x.\n\n{CHAT_INSTRUCTION}\ndef f(x):\n", cut)
    assert request_prompt("completion", task, cut) == cut  # a completion request is the program text itself


def test_chat_without_a_chat_template_is_refused(tokenizers):
    task = TaskText("T/0", "def f(x):\n", "Return x.")
    with pytest.raises(
        ValueError, match="needs a tokenizer with a chat template.*has none; use --prompt-format completion"
    ):
        model_input_ids(tokenizers[False], request_prompt("chat", task, ""))


def test_a_format_other_than_the_recorded_one_is_refused_unless_allowed():
    where = "adapter out/a (trained on procure_training_data.json)"
    with pytest.raises(ValueError, match="--prompt-format completion, but adapter out/a .* is in the chat format.*"
                                         "--allow-format-mismatch"):
        check_format("completion", "chat", where)
    assert check_format("completion", "chat", where, allow_mismatch=True) == "completion"
    assert check_format("auto", "chat", where) == "chat"
    assert check_format("chat", "chat", where) == "chat"
    assert check_format("auto", None, "") == "auto"  # nothing recorded: the tokenizer decides later
