"""Where programs are cut for concept-consistency prompts."""

from __future__ import annotations

import pytest

from procure_trl.concepts import Concept
from procure_trl.evaluation.prompts import (
    SKIP_REASONS,
    TruncationError,
    counterfactual_prompt_pair,
    cut_at_then_branch,
    cut_solution_lines,
    find_flipped_conditional,
    line_cut,
    prompt_holds_change,
)

PROMPT = 'def f(x):\n    """Sign of x."""\n'


def spans_between(original: str, code: str) -> list[list[int]]:
    """Changed spans of ``code`` (character offsets), via difflib: what `procure perturb` records."""
    import difflib

    matcher = difflib.SequenceMatcher(a=original, b=code, autojunk=False)
    return [[j1, j2] for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal"]


# ---------------------------------------------------------------------------------------------- line cut


def test_line_cut_keeps_75_percent_of_solution_lines():
    program = PROMPT + "    a = 1\n    b = 2\n    c = 3\n    return a + b + c\n\n\n"
    cut = cut_solution_lines(program, prompt_line_count=2)
    assert cut == PROMPT + "    a = 1\n    b = 2\n    c = 3\n"  # 3 of 4 (trailing blank lines not counted)


@pytest.mark.parametrize(
    "n_lines, fraction, kept",
    [(1, 0.75, 0), (2, 0.75, 1), (3, 0.75, 2), (5, 0.75, 3), (8, 0.75, 6), (4, 1.0, 3), (4, 0.0, 0), (4, 0.5, 2)],
)
def test_line_cut_rounds_down_and_leaves_a_line(n_lines, fraction, kept):
    body = "".join(f"    v{i} = {i}\n" for i in range(n_lines))
    cut = cut_solution_lines(PROMPT + body, 2, fraction)
    assert cut == PROMPT + "".join(f"    v{i} = {i}\n" for i in range(kept))


def test_line_cut_prompt_without_final_newline():
    program = "def f(x): return x"  # one line, prompt is all of it -> nothing to complete
    with pytest.raises(TruncationError, match="no solution lines"):
        cut_solution_lines(program, 1)
    assert cut_solution_lines("# task\ndef f(x):\n    return x", 1) == "# task\ndef f(x):\n"


def test_line_cut_bad_fraction():
    with pytest.raises(ValueError, match="line_fraction"):
        cut_solution_lines(PROMPT + "    pass\n", 2, 1.5)


# ---------------------------------------------------------------------------------------------- if/else


ORIGINAL_IF = PROMPT + (
    "    if x == 0:\n"
    "        return 0\n"
    "    if x > 0:\n"
    "        y = 1\n"
    "    else:\n"
    "        y = -1\n"
    "    return y\n"
)
FLIPPED_IF = PROMPT + (
    "    if x == 0:\n"
    "        return 0\n"
    "    if not x > 0:\n"
    "        y = -1\n"
    "    else:\n"
    "        y = 1\n"
    "    return y\n"
)


def test_finds_second_if_and_cuts_both_programs_at_its_then_branch():
    spans = spans_between(ORIGINAL_IF, FLIPPED_IF)
    assert find_flipped_conditional(FLIPPED_IF, spans) == 1
    pair = counterfactual_prompt_pair(ORIGINAL_IF, FLIPPED_IF, Concept.IF_ELSE_FLIP, spans, prompt_line_count=2)
    assert pair.counterfactual == PROMPT + "    if x == 0:\n        return 0\n    if not x > 0:\n"
    assert pair.reference == PROMPT + "    if x == 0:\n        return 0\n    if x > 0:\n"


def test_elif_is_found():
    original = PROMPT + (
        "    if x > 10:\n        return 2\n    elif x > 0:\n        return 1\n    else:\n        return 0\n"
    )
    code = PROMPT + (
        "    if x > 10:\n        return 2\n    elif not x > 0:\n        return 0\n    else:\n        return 1\n"
    )
    pair = counterfactual_prompt_pair(original, code, "if_else_flip", spans_between(original, code), 2)
    assert pair.counterfactual.endswith("    elif not x > 0:\n")
    assert pair.reference.endswith("    elif x > 0:\n")
    assert pair.reference.count("\n") == pair.counterfactual.count("\n")


def test_one_line_if_is_cut_before_its_statement():
    original = PROMPT + "    if x > 0: return 1\n    else: return -1\n"
    code = PROMPT + "    if not x > 0: return -1\n    else: return 1\n"
    rank = find_flipped_conditional(code, spans_between(original, code))
    assert cut_at_then_branch(code, rank) == PROMPT + "    if not x > 0: "


def test_conditional_expression_is_cut_at_its_else_branch():
    original = PROMPT + "    label = 'é'\n    return 1 if x > 0 else -1\n"  # non-ASCII: AST columns are bytes
    code = PROMPT + "    label = 'é'\n    return -1 if not x > 0 else 1\n"
    spans = spans_between(original, code)
    pair = counterfactual_prompt_pair(original, code, Concept.IF_ELSE_FLIP, spans, 2)
    assert pair.counterfactual == PROMPT + "    label = 'é'\n    return -1 if not x > 0 else "
    assert pair.reference == PROMPT + "    label = 'é'\n    return 1 if x > 0 else "


def test_innermost_condition_wins():
    code = PROMPT + "    return (1 if not x > 0 else 2) if x else 3\n"
    start = code.index("not ")
    rank = find_flipped_conditional(code, [[start, start + 4]])
    assert cut_at_then_branch(code, rank) == PROMPT + "    return (1 if not x > 0 else "


def test_line_cut_can_be_used_for_if_else_flip_too():
    spans = spans_between(ORIGINAL_IF, FLIPPED_IF)
    pair = counterfactual_prompt_pair(
        ORIGINAL_IF, FLIPPED_IF, Concept.IF_ELSE_FLIP, spans, 2, line_fraction=0.5, if_else_at_branch=False
    )
    assert pair.counterfactual == PROMPT + "    if x == 0:\n        return 0\n    if not x > 0:\n"


def test_other_concepts_use_the_line_cut():
    original = PROMPT + "    a = x\n    b = a * 2\n    c = b + 1\n    return c\n"
    code = PROMPT + "    q = x\n    b = q * 2\n    c = b + 1\n    return c\n"
    pair = counterfactual_prompt_pair(original, code, "name_random", spans_between(original, code), 2)
    assert pair.reference == PROMPT + "    a = x\n    b = a * 2\n    c = b + 1\n"
    assert pair.counterfactual == PROMPT + "    q = x\n    b = q * 2\n    c = b + 1\n"


@pytest.mark.parametrize(
    "original, code, spans, match",
    [
        (ORIGINAL_IF, FLIPPED_IF, [[0, 3]], "no changed span lies in the condition"),
        (PROMPT + "    return x\n", PROMPT + "    return -x\n", [[20, 21]], "no if statement"),
        (ORIGINAL_IF, FLIPPED_IF + "    if x:\n        pass\n", None, "original has 2 conditional"),
        (ORIGINAL_IF, FLIPPED_IF.replace("else:", "else"), [[0, 1]], "does not parse"),
    ],
)
def test_if_else_flip_skip_reasons(original, code, spans, match):
    spans = spans if spans is not None else spans_between(ORIGINAL_IF, FLIPPED_IF)
    with pytest.raises(TruncationError, match=match):
        counterfactual_prompt_pair(original, code, Concept.IF_ELSE_FLIP, spans, 2)


def test_unknown_concept_is_an_error():
    with pytest.raises(ValueError, match="unknown concept"):
        counterfactual_prompt_pair("x = 1\n", "x = 1\n", "flip", [], 0)


def test_cut_positions_follow_ast_lines_with_form_feeds_and_non_ascii_text():
    # ast counts lines only at \n / \r\n / \r and columns in UTF-8 bytes; str.splitlines also breaks at \x0c,
    # which once shifted every offset after such a line.
    code = ('def f(x):\n    s = "éé"; t = 1\x0c\n    if x > 0 and s == "é":\n        return 1\n    else:\n'
            '        return 2\n')
    start = code.index("x > 0")
    rank = find_flipped_conditional(code, [(start, start + len("x > 0"))])
    assert cut_at_then_branch(code, rank) == code[: code.index("        return 1")]


# ----------------------------------------------------------------------------------------- the cut holds the change

EIGHT = "".join(f"    v{i} = {i}\n" for i in range(8))  # 75 % of 8 solution lines: the cut keeps 6


def _rename_line(program: str, line: int) -> tuple[str, list[list[int]]]:
    """``program`` with ``v<line>`` renamed to ``w<line>`` on that solution line, and the changed span."""
    code = program.replace(f"    v{line} = ", f"    w{line} = ")
    start = code.index(f"w{line}")
    return code, [[start, start + 1]]


def test_line_cut_moves_to_just_after_the_line_of_the_first_change():
    original = PROMPT + EIGHT
    code, spans = _rename_line(original, 6)  # 7th solution line: after the 75 % cut
    assert line_cut(code, 2, 0.75) == 2 + 6
    assert line_cut(code, 2, 0.75, spans) == 2 + 7
    pair = counterfactual_prompt_pair(original, code, "name_random", spans, prompt_line_count=2)
    assert pair.counterfactual == PROMPT + "".join(f"    v{i} = {i}\n" for i in range(6)) + "    w6 = 6\n"
    assert pair.reference == PROMPT + "".join(f"    v{i} = {i}\n" for i in range(7))  # same place in the original
    assert prompt_holds_change(code, pair.counterfactual, spans)


def test_line_cut_stays_when_a_change_is_already_kept():
    original = PROMPT + EIGHT
    code, spans = _rename_line(original, 1)
    assert line_cut(code, 2, 0.75, spans) == 2 + 6
    # a change inside the problem prompt's lines (e.g. a renamed parameter) is kept by every cut
    renamed_param = "def f(y):\n" + code.split("\n", 1)[1]
    assert line_cut(renamed_param, 2, 0.0, [[6, 7]]) == 2


def test_the_first_change_decides_even_when_a_later_one_is_longer():
    original = PROMPT + EIGHT
    code, first = _rename_line(original, 6)
    code, second = _rename_line(code, 7)
    assert line_cut(code, 2, 0.75, second + first) == 2 + 7


@pytest.mark.parametrize(
    "original, code, spans, reason",
    [
        # the only change is on the last solution line: nothing is left to complete after it
        (PROMPT + EIGHT, *_rename_line(PROMPT + EIGHT, 7), "nothing_to_complete"),
        # a line added: the line cut has no unambiguous place in the original
        (PROMPT + EIGHT, PROMPT + "    pass\n" + EIGHT, [[20, 28]], "line_count_mismatch"),
        # spans that name unchanged text: both prompts come out the same
        (PROMPT + EIGHT, PROMPT + EIGHT.replace("v7 = 7", "v7 = 8"), [[20, 22]], "identical_prompts"),
    ],
)
def test_rows_that_would_not_test_the_concept_are_skipped(original, code, spans, reason):
    with pytest.raises(TruncationError) as info:
        counterfactual_prompt_pair(original, code, "name_shuffle", spans, prompt_line_count=2)
    assert info.value.reason == reason and reason in SKIP_REASONS


def test_flip_whose_change_runs_past_the_branch_cut_is_skipped():
    start = FLIPPED_IF.index("not x > 0")
    spans = [[start, FLIPPED_IF.index("y = -1") + 6]]  # the condition and the first branch line
    with pytest.raises(TruncationError) as info:
        counterfactual_prompt_pair(ORIGINAL_IF, FLIPPED_IF, Concept.IF_ELSE_FLIP, spans, 2)
    assert info.value.reason == "change_not_in_prompt"


def test_skip_reasons_are_a_closed_set():
    with pytest.raises(ValueError, match="unknown skip reason"):
        TruncationError("why", "because")
