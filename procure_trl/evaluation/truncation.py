"""Where a completion ends: program-aware truncation (pure functions).

A model continues a program start (a benchmark prompt, or a program cut part-way) and keeps writing: a test
call, a ``print``, a second problem, a Markdown fence. Cutting at stop strings from the completion's first
character also cuts code the program needs: an MBPP solution that starts ``R = 3\\nC = 3\\ndef min_cost(...)``
ends before its ``def``, a helper written before the entry point is lost. Instead, like EvalPlus's sanitizer,
:func:`truncate_completion` parses ``program start + completion`` and keeps what a program is made of:

1. a Markdown fence around the answer is removed (an opening fence line, and everything from the closing one);
2. the completion is shortened, line by line from its end, until the program parses (a last statement cut
   short by the token limit is dropped); when no line boundary makes it parse, it is kept as it is and the
   program fails as written;
3. top-level statements are kept while the entry point is not yet defined (code before it may build what it
   needs); after its definition only definitions, imports and assignments are kept (``def``, ``class``,
   ``import``, ``x = ...``), every other statement (a call, an ``assert``, ``if __name__ == ...``, a loop) is
   dropped with its lines. Statements that begin in the program start (the function being completed) are kept.
"""

from __future__ import annotations

import ast

__all__ = ["truncate_completion", "strip_fences", "KEPT_AFTER_ENTRY_POINT"]

#: Top-level statements kept after the entry point's definition: what a program may define for it to use.
KEPT_AFTER_ENTRY_POINT = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
                          ast.Assign, ast.AnnAssign, ast.AugAssign)


def strip_fences(completion: str) -> str:
    """``completion`` without a Markdown code fence: an opening fence line at its start is dropped, and the text
    from the first line that starts with a fence on is cut."""
    lines = completion.splitlines(keepends=True)
    if lines and lines[0].lstrip().startswith("```"):
        lines = lines[1:]
    for i, line in enumerate(lines):
        if line.startswith("```"):
            lines = lines[:i]
            break
    return "".join(lines)


def _longest_parsable(prefix: str, completion: str) -> tuple[str, ast.Module] | None:
    """The longest line-prefix of ``completion`` after which ``prefix + completion`` parses, and its tree."""
    ends = [len(completion)] + [i + 1 for i in range(len(completion) - 1, -1, -1) if completion[i] == "\n"]
    ends.append(0)
    for end in dict.fromkeys(ends):
        try:
            return completion[:end], ast.parse(prefix + completion[:end])
        except (SyntaxError, ValueError):  # ValueError: a null byte
            continue
    return None


def _line_offsets(text: str) -> list[int]:
    offsets, at = [0], 0
    for line in text.splitlines(keepends=True):
        at += len(line)
        offsets.append(at)
    return offsets


def truncate_completion(prefix: str, completion: str, entry_point: str | None = None) -> str:
    """The part of ``completion`` that belongs to the program started by ``prefix`` (see the module docstring).

    Args:
        prefix: the program start the model was given (the text the completion is appended to).
        completion: what the model wrote.
        entry_point: the function the tests call; ``None``: of the statements that begin in the completion only
            definitions, imports and assignments are kept.
    """
    completion = strip_fences(completion)
    parsed = _longest_parsable(prefix, completion)
    if parsed is None:
        return completion
    completion, tree = parsed
    text = prefix + completion
    lines = _line_offsets(text)
    start_of = len(prefix)
    kept: list[str] = []
    defined = entry_point is None
    starts = [lines[_first_line(node) - 1] for node in tree.body]
    for i, node in enumerate(tree.body):
        begin = starts[i]
        end = starts[i + 1] if i + 1 < len(tree.body) else len(text)
        if end <= start_of:  # wholly in the program start
            defined = defined or _defines(node, entry_point)
            continue
        if begin >= start_of and defined and not isinstance(node, KEPT_AFTER_ENTRY_POINT):
            continue  # a call, a test, a main block: not part of the program
        kept.append(text[max(begin, start_of):end])
        defined = defined or _defines(node, entry_point)
    if starts and starts[0] > start_of:  # comments and blank lines before the first statement
        kept.insert(0, text[start_of:starts[0]])
    return "".join(kept)


def _first_line(node: ast.stmt) -> int:
    """The statement's first line, its decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _defines(node: ast.stmt, entry_point: str | None) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == entry_point
