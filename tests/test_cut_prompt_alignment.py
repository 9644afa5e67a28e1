"""A cut prompt reads what the model trained on: its trained segments, and token healing at the cut.

Every cut row (reference and counterfactual side) that the harness makes from rule-engine counterfactuals of
HumanEval and MBPP (the full copy when present, the fixture rows otherwise) is compared with the training row of
the program it was cut from, tokenized by the trainer's own path: the ids the model reads
(:func:`~procure_trl.dataset.prompt_format.aligned_input`) must be a token prefix of the trained ids, and the trained
text after them must start with the text generation is made to write first. Read as one segment without healing
(:func:`~procure_trl.dataset.prompt_format.model_input_ids`), most cuts are not a prefix: the test can tell.
"""

from __future__ import annotations

import pytest
from mbpp_data import MBPP_DIR

from procure_trl.dataset.prompt_format import (
    TaskText,
    aligned_input,
    model_input_ids,
    request_prompt,
    training_example,
)
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.sampling import ForcedPrefix, GenerationRequest, TransformersBackend, _VocabText
from procure_trl.evaluation.selection import cut_rows
from procure_trl.testing_utils import TINY_CHAT_TEMPLATE, build_tiny_tokenizer
from procure_trl.training.data import tokenize_concept_row


@pytest.fixture(scope="module")
def tokenizer():
    tok = build_tiny_tokenizer("bpe", add_bos=True)  # BOS in front, as Llama tokenizers: the head keeps it
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="module")
def cuts(tmp_path_factory):
    """(task, program, changed spans, cut prompt, head) for both sides of every cut row."""
    from procure_trl.evaluation.counterfactuals import load_counterfactual_variants
    from procure_trl.perturb.engine import GenerationConfig, generate_to_jsonl
    from procure_trl.problems import load_mbpp, load_problems

    out = []
    for name, problems in (("humaneval", load_problems("humaneval")), ("mbpp", load_mbpp(MBPP_DIR))):
        path = tmp_path_factory.mktemp("cuts") / f"{name}.jsonl"
        generate_to_jsonl(problems, path, GenerationConfig(seed=0, num_workers=2, progress=False))
        by_id = {p.task_id: p for p in problems}
        variants = load_counterfactual_variants(path, by_id, name)
        rows, _ = cut_rows(variants, by_id, EvaluationConfig(model="m"))
        source = {(v.task_id, v.concept.value, v.variant): v for v in variants}
        for row in rows:
            v = source[(row.task_id, row.concept.value, row.variant)]
            task = TaskText.from_problem(by_id[row.task_id])
            out.append((task, v.original, [], row.reference_prompt, row.reference_head))
            out.append((task, v.code, v.changed_spans, row.counterfactual_prompt, row.counterfactual_head))
    return out


def _trained_ids(fmt, task, program, spans, tokenizer):
    row = training_example(fmt, task, program, spans)
    return tokenize_concept_row(row, 0, tokenizer=tokenizer, spans_column="changed_spans",
                                mask_column="mask")["input_ids"]


@pytest.mark.slow  # rule-engine counterfactuals of all of HumanEval and MBPP first (about 30 s here)
@pytest.mark.parametrize("fmt", ["completion", "chat"])
def test_every_cut_prompt_reads_a_token_prefix_of_its_trained_text(cuts, tokenizer, fmt):
    from procure_trl.evaluation.sampling import _after_forced
    from procure_trl.testing_utils import build_tiny_llama

    assert len(cuts) > 500
    vocab = _VocabText.for_tokenizer(tokenizer)
    backend = TransformersBackend(build_tiny_llama(tokenizer), tokenizer, EvaluationConfig(model="m"))
    misread, unaligned = [], 0
    for task, program, spans, cut, head in cuts:
        trained = _trained_ids(fmt, task, program, spans, tokenizer)
        request = request_prompt(fmt, task, cut)
        read, forced = aligned_input(tokenizer, request, head if fmt == "completion" else None)
        if trained[: len(read)] != read or not tokenizer.decode(trained[len(read):]).startswith(forced):
            misread.append((task.task_id, cut[-40:], forced))
        if fmt == "completion":  # the ids and the forced text spell the cut program, nothing lost or added
            assert tokenizer.decode(read, skip_special_tokens=True) + forced == cut
            # An oracle that writes the trained tokens after the input is let through while the forced text is
            # written, and the backend turns its tokens into exactly the rest of the program.
            written = ""
            for token in trained[len(read):]:
                if len(written) >= len(forced):
                    break
                assert token in vocab.tokens_towards(forced[len(written):]), (task.task_id, forced)
                written += vocab.texts[token]
            assert _after_forced(forced, backend._decode_completion(read, trained[len(read):])) == program[len(cut):]
        one_segment = model_input_ids(tokenizer, request)
        unaligned += trained[: len(one_segment)] != one_segment
    assert not misread, f"{len(misread)} of {len(cuts)} cut prompts: {misread[:3]}"
    # what the harness read before: a cut as one segment, unhealed, is mostly not what the model trained on
    assert unaligned > len(cuts) // 4, unaligned


def test_a_cut_inside_the_task_prompt_is_healed_there_and_keeps_the_bos(tokenizer):
    # A flipped conditional expression in a helper the task prompt gives: the cut lies inside the trained prompt
    prompt = "def helper(g):\n    return g[1:] if len(g) == 3 else g\n\n\ndef f(s):\n    \"\"\"Doc.\"\"\"\n"
    program = prompt + "    return helper(s)\n"
    cut = prompt[: prompt.index("g\n\n\n")]  # "... if len(g) == 3 else "
    task = TaskText("T/0", prompt, "Doc.")
    read, forced = aligned_input(tokenizer, cut, head=len(prompt))
    assert read[0] == tokenizer.bos_token_id and forced == " else "
    assert tokenizer.decode(read, skip_special_tokens=True) + forced == cut
    trained = _trained_ids("completion", task, program, [], tokenizer)
    assert trained[: len(read)] == read
    assert aligned_input(tokenizer, prompt, head=len(prompt)) == (tokenizer(prompt)["input_ids"], "")  # the task


def test_forced_prefix_offers_exactly_the_tokens_that_spell_the_rest(tokenizer):
    import torch

    vocab = _VocabText.for_tokenizer(tokenizer)
    assert vocab is not None
    text = "\n        return x"
    ids = torch.tensor([[1, 2]])  # a prompt of width 2, nothing written yet
    processor = ForcedPrefix([text], vocab, width=2)
    for written in ("", "\n", "\n        ret"):
        row = torch.tensor([ids[0].tolist() + tokenizer(written, add_special_tokens=False)["input_ids"]])
        assert vocab.written(row[0, 2:].tolist()) == written
        scores = processor(row, torch.zeros(1, len(tokenizer)))
        offered = {vocab.texts[t] for t in torch.nonzero(scores[0] == 0).flatten().tolist()}
        rest = text[len(written):]
        assert offered and all(rest.startswith(t) or t.startswith(rest) for t in offered), offered
        # every token that does spell a start of the rest is offered (the trained one among them)
        assert {t for t in vocab.texts if t and rest.startswith(t)} <= offered
        assert float(scores[0, tokenizer.eos_token_id]) == float("-inf")  # no end before the text is written
    done = torch.tensor([ids[0].tolist() + tokenizer(text + "\n", add_special_tokens=False)["input_ids"]])
    assert torch.equal(processor(done, torch.ones(1, len(tokenizer))), torch.ones(1, len(tokenizer)))


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_the_backend_heals_a_cut_and_returns_the_text_after_it(tiny_tokenizer, tiny_llama, temperature, monkeypatch):
    program = "def f(x):\n    \"\"\"Doc.\"\"\"\n    if x > 1:\n        return x\n    return 0\n"
    cut = program[: program.index("        return x")]  # ends "if x > 1:\n": the last word and the line break
    head = program.index("    if")
    config = EvaluationConfig(model="m", n=1, k=(1,), temperature=temperature, max_new_tokens=6)
    backend = TransformersBackend(tiny_llama, tiny_tokenizer, config)
    ids, forced = backend._input(GenerationRequest(cut, 0, head))
    assert forced == " 1:\n" and tiny_tokenizer.decode(ids) + forced == cut
    healed = backend.generate([GenerationRequest(cut, 0, head), GenerationRequest(program[:head], 0)])
    assert all(isinstance(c, str) for c in healed)
    # Without the constraint the random model does not write the forced text first, and the backend says so
    # instead of returning a completion that does not continue the cut.
    monkeypatch.setattr(ForcedPrefix, "__call__", lambda self, input_ids, scores: scores)
    with pytest.raises(RuntimeError, match="was to start with"):
        backend.generate([GenerationRequest(cut, 0, head)])
