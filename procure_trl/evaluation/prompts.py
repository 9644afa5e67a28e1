"""Where a program is cut to make a completion prompt for concept-consistency evaluation (pure functions).

To test whether a model keeps solving a problem after a concept-level rewrite, both the original program and
its counterfactual are cut part-way and the model completes the rest:

* ``if_else_flip``: the program is cut at the start of the **then-branch of the flipped** ``if``. The prompt
  ends right after ``if <condition>:`` (a line break), so the model has read the (negated) condition and must
  write the branch that now belongs under it. For a conditional expression ``A if c else B`` the then-branch
  ``A`` precedes the condition, so the cut is at the start of ``B`` instead: the model has read ``A`` and the
  condition and completes the other branch.
* every other concept (and ``if_else_flip`` with ``if_else_at_branch=False``): the **line cut**. It keeps
  the problem prompt's lines and the first ``line_fraction`` (75 % by default) of the **solution's** lines
  (trailing blank lines are not counted), rounded down and always leaving at least one line for the model.
  When no changed span lies entirely in the kept lines, the cut moves down to just after the line that holds
  the end of the first changed span (the one that starts first), so the counterfactual prompt always shows
  the model at least one change.

The reference prompt is the original program cut at the same place: after the same number of lines for the
line cut (the perturbations keep the line count; a row where they differ is skipped), and for
``if_else_flip`` at the corresponding ``if`` of the original, found by its rank among the program's
conditionals in source order, which the flip does not change.

Every pair is then checked: the counterfactual prompt must contain a changed span entirely, and the two
prompts must differ. A pair that fails a check, or a program that cannot be cut, raises
:class:`TruncationError` with a :attr:`~TruncationError.reason` code (one of :data:`SKIP_REASONS`); the harness
records it and skips the row instead of scoring prompts that do not test the concept.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from procure_trl.analysis.spans import SourceMap
from procure_trl.concepts import AnyConcept, Concept

__all__ = [
    "SKIP_REASONS",
    "TruncationError",
    "PromptPair",
    "cut_solution_lines",
    "line_cut",
    "prompt_holds_change",
    "find_flipped_conditional",
    "cut_at_then_branch",
    "counterfactual_prompt_pair",
]


#: Why a row is not scored, by reason code (the code is what reports count; the message adds the details).
SKIP_REASONS: dict[str, str] = {
    "unparsable": "a program does not parse",
    "no_conditional": "the counterfactual has no if statement or conditional expression",
    "flip_not_found": "no changed span lies in a condition: the flipped if is unknown",
    "conditional_count_mismatch": "the original and the counterfactual have different numbers of conditionals",
    "line_count_mismatch": "the original and the counterfactual have different numbers of lines",
    "nothing_to_complete": "no solution line would be left after the cut",
    "change_not_in_prompt": "the counterfactual prompt contains no changed span",
    "identical_prompts": "the reference and counterfactual prompts are identical",
}


class TruncationError(ValueError):
    """A program could not be cut for concept-consistency evaluation; the message says why.

    Parameters:
        message: the reason in words, with the row's details.
        reason: its code, a key of :data:`SKIP_REASONS` (reports count skipped rows per code).
    """

    def __init__(self, message: str, reason: str):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; use one of {', '.join(SKIP_REASONS)}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PromptPair:
    """The two prompts of one (problem, concept) row.

    Attributes:
        reference: the original program, cut (its completions give the CCS ``references``).
        counterfactual: the counterfactual program, cut the same way (its completions give ``predictions``).
    """

    reference: str
    counterfactual: str


def _line_ends(program: str) -> list[int]:
    """End offset (exclusive) of each line of ``program``, lines as ``str.splitlines`` splits them."""
    ends, at = [], 0
    for line in program.splitlines(keepends=True):
        at += len(line)
        ends.append(at)
    return ends


def _solution_line_count(program: str, prompt_line_count: int) -> int:
    """Lines after the problem prompt's, trailing blank lines not counted (they are not code to complete)."""
    solution = program.splitlines()[prompt_line_count:]
    while solution and not solution[-1].strip():
        solution.pop()
    return len(solution)


def line_cut(
    program: str,
    prompt_line_count: int,
    line_fraction: float = 0.75,
    changed_spans: Sequence[Sequence[int]] | None = None,
) -> int:
    """How many leading lines of ``program`` the line cut keeps (see the module docstring).

    Args:
        program: the full program (prompt followed by solution).
        prompt_line_count: how many leading lines belong to the problem prompt (always kept).
        line_fraction: share of the solution's non-trailing-blank lines to keep, in [0, 1]; rounded down and
            capped so that at least one solution line is left to complete.
        changed_spans: ``[start, end)`` character spans of ``program`` that the perturbation changed; when given
            and none lies entirely in the kept lines, the cut moves to just after the line that holds the end
            of the first of them.

    Raises:
        TruncationError: no solution line, or none left after the line of the first change.
    """
    if not 0.0 <= line_fraction <= 1.0:
        raise ValueError(f"line_fraction={line_fraction!r} must lie in [0, 1] (0.75 keeps 75 % of the lines)")
    n_solution = _solution_line_count(program, prompt_line_count)
    if not n_solution:
        raise TruncationError(
            f"no solution lines after the {prompt_line_count} prompt line(s): nothing is left to complete",
            "nothing_to_complete",
        )
    keep = prompt_line_count + min(math.floor(line_fraction * n_solution + 1e-9), n_solution - 1)
    if not changed_spans:
        return keep
    ends = _line_ends(program)
    if any(_span_within(span, ends[keep - 1] if keep else 0) for span in changed_spans):
        return keep
    start, end = min((int(s), int(e)) for s, e in changed_spans)
    last_char = max(end - 1, start)  # an empty span (a deletion) sits at its start
    line = next((i for i, line_end in enumerate(ends) if last_char < line_end), len(ends) - 1)
    if line + 1 >= prompt_line_count + n_solution:
        raise TruncationError(
            f"the first changed span ends on line {line + 1}, the last solution line: no line is left to complete "
            "after it",
            "nothing_to_complete",
        )
    return line + 1


def _keep_lines(program: str, n_lines: int) -> str:
    kept = "".join(program.splitlines(keepends=True)[:n_lines])
    if kept and not kept.endswith("\n"):  # the prompt was the whole last line; end it so the model starts anew
        kept += "\n"
    return kept


def cut_solution_lines(program: str, prompt_line_count: int, line_fraction: float = 0.75) -> str:
    """Keep the prompt's lines and the first ``line_fraction`` of the solution's lines of ``program``.

    The plain line cut, without regard to changes: :func:`line_cut` gives the number of lines.
    """
    return _keep_lines(program, line_cut(program, prompt_line_count, line_fraction))


def _span_within(span: Sequence[int], limit: int) -> bool:
    """The span lies entirely in the first ``limit`` characters (an empty span: its position is before it)."""
    start, end = int(span[0]), int(span[1])
    return end <= limit and (start < end or start < limit)


def prompt_holds_change(code: str, prompt: str, changed_spans: Sequence[Sequence[int]]) -> bool:
    """True when ``prompt``, a cut of ``code``, contains at least one of ``code``'s changed spans entirely.

    The prompt covers ``code`` as far as the two agree (a cut may add a final line break).
    """
    covered = len(os.path.commonprefix([code, prompt]))
    return any(_span_within(span, covered) for span in changed_spans)


def _conditionals(tree: ast.AST) -> list[ast.If | ast.IfExp]:
    """``if`` statements (``elif`` included) and conditional expressions, in source order (outer first)."""
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.If, ast.IfExp))]
    return sorted(nodes, key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))


def _parse(program: str, what: str) -> ast.Module:
    try:
        return ast.parse(program)
    except SyntaxError as exc:
        raise TruncationError(
            f"the {what} program does not parse ({exc.msg}, line {exc.lineno})", "unparsable"
        ) from None


def find_flipped_conditional(code: str, changed_spans: Sequence[Sequence[int]]) -> int:
    """Rank (in source order among all conditionals of ``code``) of the ``if`` the flip rewrote.

    The flipped conditional is the one whose condition contains a changed span, taking the spans in order
    (for an ``if`` the condition comes first; for ``A if c else B`` the swapped ``A`` comes before ``c``, so
    the first span may lie outside every condition). Among nested candidates the innermost condition wins.
    """
    tree = _parse(code, "counterfactual")
    conditionals = _conditionals(tree)
    if not conditionals:
        raise TruncationError(
            "the counterfactual has no if statement or conditional expression to cut at", "no_conditional"
        )
    source_map = SourceMap(code)
    ranges = [source_map.node_span(node.test) for node in conditionals]
    for start, end in sorted((int(s), int(e)) for s, e in changed_spans):
        hits = [
            (t_end - t_start, rank)
            for rank, (t_start, t_end) in enumerate(ranges)
            # the span overlaps the condition; an empty span (a deletion) counts when it lies inside
            if (start < t_end and end > t_start) or (start == end and t_start <= start <= t_end)
        ]
        if hits:
            return min(hits)[1]
    raise TruncationError(
        "no changed span lies in the condition of an if statement or conditional expression: "
        "cannot tell which if was flipped",
        "flip_not_found",
    )


def cut_at_then_branch(program: str, rank: int, what: str = "program") -> str:
    """Cut ``program`` at the start of the then-branch of its ``rank``-th conditional (source order).

    For an ``if`` statement the prompt ends with the line of its condition (the branch's first statement
    starts on the next line) or, for a one-line ``if c: stmt``, right before ``stmt``. For a conditional
    expression the cut is at the start of its else-branch (see the module docstring).
    """
    conditionals = _conditionals(_parse(program, what))
    if rank >= len(conditionals):
        raise TruncationError(
            f"the {what} has {len(conditionals)} conditional(s), fewer than the {rank + 1} needed to find "
            "the flipped if",
            "conditional_count_mismatch",
        )
    node = conditionals[rank]
    source_map = SourceMap(program)  # ast columns count UTF-8 bytes; this maps them to characters
    if isinstance(node, ast.IfExp):
        return program[: source_map.offset(node.orelse.lineno, node.orelse.col_offset)]
    first = node.body[0]
    if node.test.end_lineno is not None and first.lineno > node.test.end_lineno:  # ast.parse sets it
        return program[: source_map.line_start(first.lineno)]
    return program[: source_map.offset(first.lineno, first.col_offset)]


def counterfactual_prompt_pair(
    original: str,
    code: str,
    concept: AnyConcept | str,
    changed_spans: Sequence[Sequence[int]],
    prompt_line_count: int,
    line_fraction: float = 0.75,
    if_else_at_branch: bool = True,
) -> PromptPair:
    """The reference and counterfactual prompts of one row (see the module docstring for the cuts).

    Args:
        original: the original full program.
        code: the counterfactual full program.
        concept: the row's concept.
        changed_spans: ``[start, end)`` character spans of ``code`` that the perturbation changed.
        prompt_line_count: lines of the problem prompt at the top of both programs (always kept).
        line_fraction: share of solution lines kept by the line cut.
        if_else_at_branch: cut ``if_else_flip`` rows at the flipped branch (``False``: use the line cut).

    Raises:
        TruncationError: the programs cannot be cut this way (the message is the skip reason).
    """
    concept = Concept.parse(concept)
    if concept is Concept.IF_ELSE_FLIP and if_else_at_branch:
        rank = find_flipped_conditional(code, changed_spans)
        n_code = len(_conditionals(_parse(code, "counterfactual")))
        n_original = len(_conditionals(_parse(original, "original")))
        if n_code != n_original:
            raise TruncationError(
                f"the original has {n_original} conditional(s) but the counterfactual {n_code}: the flipped if "
                "has no unambiguous counterpart in the original",
                "conditional_count_mismatch",
            )
        pair = PromptPair(
            reference=cut_at_then_branch(original, rank, "original"),
            counterfactual=cut_at_then_branch(code, rank, "counterfactual"),
        )
    else:
        pair = _line_cut_pair(original, code, changed_spans, prompt_line_count, line_fraction)
    if not prompt_holds_change(code, pair.counterfactual, changed_spans):
        raise TruncationError(
            f"the counterfactual prompt ({len(pair.counterfactual.splitlines())} lines) contains none of the "
            f"{len(changed_spans)} changed span(s) entirely",
            "change_not_in_prompt",
        )
    if pair.reference == pair.counterfactual:
        raise TruncationError(
            "the reference and counterfactual prompts are identical: the change lies after the cut",
            "identical_prompts",
        )
    return pair


def _line_cut_pair(
    original: str, code: str, changed_spans: Sequence[Sequence[int]], prompt_line_count: int, line_fraction: float
) -> PromptPair:
    """Both programs cut after the same number of lines, chosen on the counterfactual so that it holds a change."""
    n_code, n_original = len(code.splitlines()), len(original.splitlines())
    if n_code != n_original:
        raise TruncationError(
            f"the original has {n_original} line(s) but the counterfactual {n_code}: the line cut has no "
            "unambiguous place in the original",
            "line_count_mismatch",
        )
    keep = line_cut(code, prompt_line_count, line_fraction, changed_spans)
    return PromptPair(reference=_keep_lines(original, keep), counterfactual=_keep_lines(code, keep))
