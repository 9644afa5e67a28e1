"""The pure span -> token mask function, property-tested against two real fast tokenizers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procure_trl.analysis.spans import validate_spans
from procure_trl.dataset.masks import check_mask_alignment, perturbation_mask, spans_to_token_mask

# Code-like text: identifiers, operators, indentation, newlines and a few non-ASCII characters
# (multi-byte in UTF-8, so byte-level BPE splits them across tokens).
_ALPHABET = "abcdefxyz_0123456789 ()[]:=+-*<>,.\n\t'\"#éλ→"
texts = st.text(alphabet=_ALPHABET, min_size=1, max_size=120)


@st.composite
def text_and_spans(draw):
    text = draw(texts)
    n = len(text)
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=4))
    spans = [(min(a, b), max(a, b)) for a, b in pairs if min(a, b) < max(a, b)]
    return text, spans


def _oracle(offsets, spans):
    """Independent statement of the contract: a token is perturbed iff one of its characters is changed."""
    changed = {c for s, e in spans for c in range(s, e)}
    return [1 if any(c in changed for c in range(a, b)) else 0 for a, b in offsets]


def test_overlap_rule_on_hand_made_offsets():
    # tokens: [0,3) [3,4) [4,9) [9,9) (zero-width) [10,12) -- a gap at 9..10 like WordPiece whitespace
    offsets = [(0, 3), (3, 4), (4, 9), (9, 9), (10, 12)]
    assert spans_to_token_mask(offsets, [(3, 5)]) == [0, 1, 1, 0, 0]
    assert spans_to_token_mask(offsets, [(9, 10)]) == [0, 0, 0, 0, 0]  # the span touches only the gap
    assert spans_to_token_mask(offsets, [(2, 3)]) == [1, 0, 0, 0, 0]  # end is exclusive
    assert spans_to_token_mask(offsets, [(11, 12), (0, 1)], text_length=12) == [1, 0, 0, 0, 1]
    assert spans_to_token_mask(offsets, []) == [0, 0, 0, 0, 0]


def test_special_tokens_with_empty_offsets_are_never_marked():
    assert spans_to_token_mask([(0, 0), (0, 4), (4, 4)], [(0, 4)]) == [0, 1, 0]


@pytest.mark.parametrize(
    "span, message",
    [((5, 20), "outside the text of length 10"), ((4, 4), "empty or negative"), ((-1, 2), "empty or negative"),
     ((1, 2, 3), r"not a \[start, end\) pair"), ((1.5, 3), "must hold integers")],
)
def test_bad_spans_name_the_span(span, message):
    with pytest.raises(ValueError, match=message) as info:
        spans_to_token_mask([(0, 10)], [(0, 1), span], text_length=10)
    assert "span #1" in str(info.value)


def test_validate_spans_accepts_lists_from_json():
    assert validate_spans([[0, 2], [3, 4]], 4) == [(0, 2), (3, 4)]


def test_check_mask_alignment():
    check_mask_alignment([5, 6, 7], [0, 1, 0])
    with pytest.raises(ValueError, match="3 entries but there are 2 tokens"):
        check_mask_alignment([5, 6], [0, 1, 0], where="row 7")
    with pytest.raises(ValueError, match="entry 1 is 2"):
        check_mask_alignment([5, 6], [0, 2])


def test_slow_tokenizer_is_refused_with_the_fix():
    from transformers import ByT5Tokenizer  # a real Python ("slow") tokenizer that needs no files

    with pytest.raises(ValueError, match=r"needs a fast tokenizer.*got ByT5Tokenizer") as err:
        perturbation_mask("x = 1", [(0, 1)], ByT5Tokenizer())
    # the fix for a model that has no fast tokenizer, not the advice to load the fast one it lacks
    assert "use_fast" not in str(err.value)
    assert "pre-tokenized rows" in str(err.value) and "spans_to_token_mask(offsets, spans)" in str(err.value)


def test_spans_outside_text_raise_in_perturbation_mask(tiny_tokenizer):
    with pytest.raises(ValueError, match="outside the text of length 5"):
        perturbation_mask("x = 1", [(3, 9)], tiny_tokenizer)


def test_renamed_variable_marks_its_tokens(tiny_tokenizer):
    text = "def add(a, b):\n    return a + total\n"
    start = text.index("total")
    ids, mask = perturbation_mask(text, [(start, start + 5)], tiny_tokenizer)
    offsets = tiny_tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    marked = "".join(text[a:b] for (a, b), m in zip(offsets, mask) if m)
    assert "total" in marked and "return" not in marked
    assert len(ids) == len(mask)


@pytest.mark.parametrize("fixture", ["tiny_tokenizer", "tiny_wordpiece_tokenizer"])
def test_property_mask_marks_exactly_overlapping_tokens(fixture, request):
    tokenizer = request.getfixturevalue(fixture)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text_and_spans())
    def check(case):
        text, spans = case
        ids, mask = perturbation_mask(text, spans, tokenizer)
        encoding = tokenizer(text, return_offsets_mapping=True)
        assert ids == encoding["input_ids"]
        assert mask == _oracle(encoding["offset_mapping"], spans)
        check_mask_alignment(ids, mask)
        # every changed character that some token covers makes that token perturbed
        for s, e in spans:
            for c in range(s, e):
                for i, (a, b) in enumerate(encoding["offset_mapping"]):
                    if a <= c < b:
                        assert mask[i] == 1

    check()


@given(
    offsets=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: (min(t), max(t))), max_size=20),
    spans=st.lists(st.tuples(st.integers(0, 39), st.integers(1, 40)).filter(lambda t: t[0] < t[1]), max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_property_pure_function_matches_oracle(offsets, spans):
    assert spans_to_token_mask(offsets, spans) == _oracle(offsets, spans)


@pytest.mark.parametrize("fixture", ["tiny_tokenizer", "tiny_wordpiece_tokenizer"])
def test_property_prompt_completion_mask_keeps_the_prompt_tokens_and_shifts_spans(fixture, request):
    """The prompt is tokenized alone (what the model reads at inference), the completion after it."""
    from procure_trl.dataset.masks import prompt_completion_mask

    tokenizer = request.getfixturevalue(fixture)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(prompt=texts, case=text_and_spans())
    def check(prompt, case):
        completion, spans = case
        out = prompt_completion_mask(prompt, completion, spans, tokenizer)
        prompt_ids = tokenizer(prompt)["input_ids"]
        rest = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False, return_offsets_mapping=True)
        assert out["input_ids"] == prompt_ids + rest["input_ids"]
        assert out["completion_mask"] == [0] * len(prompt_ids) + [1] * len(rest["input_ids"])
        assert out["perturbation_mask"] == [0] * len(prompt_ids) + _oracle(rest["offset_mapping"], spans)

    check()
