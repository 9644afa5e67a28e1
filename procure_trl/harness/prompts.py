"""Where a program is cut to make a completion prompt for concept-consistency evaluation (pure functions).

To test whether a model keeps solving a problem after a concept-level rewrite, both the original program and
its counterfactual are cut part-way and the model completes the rest:

* ``if_else_flip``: the program is cut at the start of the **then-branch of the flipped** ``if``. The prompt
  ends right after ``if <condition>:`` (a line break), so the model has read the (negated) condition and must
  write the branch that now belongs under it. For a conditional expression ``A if c else B`` the then-branch
  ``A`` precedes the condition, so the cut is at the start of ``B`` instead: the model has read ``A`` and the
  condition and completes the other branch.
* every other concept: the first ``line_fraction`` (75 % by default) of the **solution's** lines are kept
  (lines after the problem prompt's lines; trailing blank lines are not counted), rounded down and always
  leaving at least one line for the model.

The same cut is applied to the original program to build the prompt paired with each counterfactual (for
``if_else_flip``: at the corresponding ``if`` of the original, found by its rank among the program's
conditionals in source order, which the flip does not change).

A program that cannot be cut raises :class:`TruncationError`; the harness records the reason and skips the
pair instead of evaluating a prompt that does not test the concept.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass

from procure_trl.analysis.spans import SourceMap
from procure_trl.concepts import Concept

__all__ = [
    "TruncationError",
    "PromptPair",
    "cut_solution_lines",
    "find_flipped_conditional",
    "cut_at_then_branch",
    "counterfactual_prompt_pair",
]


class TruncationError(ValueError):
    """A program could not be cut for concept-consistency evaluation; the message says why."""


@dataclass(frozen=True)
class PromptPair:
    """The two prompts of one (problem, concept) row.

    Attributes:
        reference: the original program, cut (its completions give the CCS ``references``).
        counterfactual: the counterfactual program, cut the same way (its completions give ``predictions``).
    """

    reference: str
    counterfactual: str


def cut_solution_lines(program: str, prompt_line_count: int, line_fraction: float = 0.75) -> str:
    """Keep the prompt's lines and the first ``line_fraction`` of the solution's lines of ``program``.

    Args:
        program: the full program (prompt followed by solution).
        prompt_line_count: how many leading lines belong to the problem prompt (always kept).
        line_fraction: share of the solution's non-trailing-blank lines to keep, in [0, 1]; rounded down and
            capped so that at least one solution line is left to complete.
    """
    if not 0.0 <= line_fraction <= 1.0:
        raise ValueError(f"line_fraction={line_fraction!r} must lie in [0, 1] (0.75 keeps 75 % of the lines)")
    lines = program.splitlines(keepends=True)
    solution = lines[prompt_line_count:]
    while solution and not solution[-1].strip():  # trailing blank lines are not code to complete
        solution.pop()
    if not solution:
        raise TruncationError(
            f"no solution lines after the {prompt_line_count} prompt line(s): nothing is left to complete"
        )
    keep = min(math.floor(line_fraction * len(solution) + 1e-9), len(solution) - 1)
    kept = "".join(lines[: prompt_line_count + keep])
    if kept and not kept.endswith("\n"):  # the prompt was the whole last line; end it so the model starts anew
        kept += "\n"
    return kept


def _conditionals(tree: ast.AST) -> list[ast.If | ast.IfExp]:
    """``if`` statements (``elif`` included) and conditional expressions, in source order (outer first)."""
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.If, ast.IfExp))]
    return sorted(nodes, key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))


def _parse(program: str, what: str) -> ast.Module:
    try:
        return ast.parse(program)
    except SyntaxError as exc:
        raise TruncationError(f"the {what} program does not parse ({exc.msg}, line {exc.lineno})") from None


def find_flipped_conditional(code: str, changed_spans: Sequence[Sequence[int]]) -> int:
    """Rank (in source order among all conditionals of ``code``) of the ``if`` the flip rewrote.

    The flipped conditional is the one whose condition contains a changed span, taking the spans in order
    (for an ``if`` the condition comes first; for ``A if c else B`` the swapped ``A`` comes before ``c``, so
    the first span may lie outside every condition). Among nested candidates the innermost condition wins.
    """
    tree = _parse(code, "counterfactual")
    conditionals = _conditionals(tree)
    if not conditionals:
        raise TruncationError("the counterfactual has no if statement or conditional expression to cut at")
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
        "cannot tell which if was flipped"
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
            "the flipped if"
        )
    node = conditionals[rank]
    source_map = SourceMap(program)  # ast columns count UTF-8 bytes; this maps them to characters
    if isinstance(node, ast.IfExp):
        return program[: source_map.offset(node.orelse.lineno, node.orelse.col_offset)]
    first = node.body[0]
    if first.lineno > node.test.end_lineno:
        return program[: source_map.line_start(first.lineno)]
    return program[: source_map.offset(first.lineno, first.col_offset)]


def counterfactual_prompt_pair(
    original: str,
    code: str,
    concept: Concept | str,
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
                "has no unambiguous counterpart in the original"
            )
        return PromptPair(
            reference=cut_at_then_branch(original, rank, "original"),
            counterfactual=cut_at_then_branch(code, rank, "counterfactual"),
        )
    return PromptPair(
        reference=cut_solution_lines(original, prompt_line_count, line_fraction),
        counterfactual=cut_solution_lines(code, prompt_line_count, line_fraction),
    )
