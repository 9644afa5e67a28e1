"""Source offsets and span edits.

The stdlib ``ast`` reports positions as (1-based line, UTF-8 *byte* column). Everything the rest of
the project sees is a *character* offset into the Python string, so that ``code[start:end]`` is the
text in question. :class:`SourceMap` converts between the two, and :func:`apply_edits` performs a set
of replacements while reporting where each replacement text ended up in the new string -- the
``changed_spans`` of a perturbation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]
_NEWLINE = re.compile(r"\r\n|\r|\n")


class SourceMap:
    """Converts ``ast`` (line, byte column) positions of one source string into character offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        # ast counts lines on \n, \r\n and a lone \r alike (not on \x0c, \x1c, \u2028...)
        self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]
        self._ascii = source.isascii()

    def line_start(self, lineno: int) -> int:
        """Character offset of the first character of 1-based line ``lineno``."""
        return self._line_starts[lineno - 1]

    def offset(self, lineno: int, byte_col: int) -> int:
        """Character offset of the position ``(lineno, byte_col)`` as reported by ``ast``."""
        start = self._line_starts[lineno - 1]
        if self._ascii:
            return start + byte_col
        end = self._line_starts[lineno] if lineno < len(self._line_starts) else len(self.source)
        line = self.source[start:end]
        if line.isascii():
            return start + byte_col
        return start + len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    def node_span(self, node: ast.AST) -> Span:
        """Character span ``[start, end)`` of an ``ast`` node that carries positions."""
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def statement_span(self, stmt: ast.stmt) -> Span:
        """Span of a statement without a trailing ``;``. CPython ends a compound statement whose last
        line is ``return x;`` *after* the semicolon but a simple statement *before* it; trimming makes
        every statement span end the same way, so moved texts carry no stray semicolon."""
        start, end = self.node_span(stmt)
        if self.source[end - 1 : end] == ";":
            end -= 1
            while end > start and self.source[end - 1] in " \t":
                end -= 1
        return start, end


@dataclass(frozen=True)
class Edit:
    """Replace ``source[start:end]`` with ``text``."""

    start: int
    end: int
    text: str


class OverlappingEditsError(ValueError):
    """Two edits touch the same characters; the perturbation would be ambiguous."""


def apply_edits(source: str, edits: list[Edit]) -> tuple[str, tuple[Span, ...]]:
    """Apply non-overlapping ``edits`` to ``source``.

    Returns the new string and, for each edit with non-empty text, the span its text occupies in the
    new string -- sorted; spans of edits that touch are merged so the result is non-overlapping.
    Every character outside those spans is the original character, shifted by earlier edits.
    """
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    parts: list[str] = []
    spans: list[list[int]] = []
    cursor = 0
    shift = 0
    for edit in ordered:
        if edit.start < cursor or edit.end < edit.start or edit.end > len(source):
            raise OverlappingEditsError(
                f"edit [{edit.start}, {edit.end}) overlaps a previous edit or lies outside the source "
                f"(length {len(source)}); make the edits disjoint"
            )
        parts.append(source[cursor : edit.start])
        parts.append(edit.text)
        new_start = edit.start + shift
        new_end = new_start + len(edit.text)
        if edit.text:
            if spans and spans[-1][1] == new_start:
                spans[-1][1] = new_end
            else:
                spans.append([new_start, new_end])
        shift += len(edit.text) - (edit.end - edit.start)
        cursor = edit.end
    parts.append(source[cursor:])
    return "".join(parts), tuple((s, e) for s, e in spans)


def top_level_index(tree: ast.Module, line: int) -> int:
    """Index of the top-level statement of ``tree`` that spans 1-based ``line``."""
    for i, stmt in enumerate(tree.body):
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        if first <= line <= stmt.end_lineno:  # type: ignore[operator]
            return i
    raise ValueError(f"no top-level statement spans line {line}")


def same_structure(expected: ast.Module, actual: ast.Module, index: int) -> bool:
    """True when ``actual`` has as many top-level statements as ``expected`` and its statement ``index``
    has the same ``ast.dump``. Used after a span edit confined to that statement: the text of the other
    statements is unchanged, so comparing the edited one proves the edit did what its ``ast`` twin does."""
    return len(expected.body) == len(actual.body) and ast.dump(expected.body[index]) == ast.dump(actual.body[index])


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def validate_spans(
    spans: Sequence[Sequence[int]], text_length: int | None = None, where: str = ""
) -> list[tuple[int, int]]:
    """Check that every span is a pair of integers ``0 <= start < end <= text_length``.

    Returns the spans as a list of tuples. ``text_length=None`` skips the upper bound. The error names
    the offending span and its index, so a bad row in a dataset can be found.
    """
    checked: list[tuple[int, int]] = []
    for i, span in enumerate(spans):
        if isinstance(span, (str, bytes)) or not hasattr(span, "__len__") or len(span) != 2:
            raise ValueError(f"{_where(where)}span #{i} {span!r} is not a [start, end) pair of integers")
        start, end = span
        if isinstance(start, bool) or isinstance(end, bool) or not (_is_int(start) and _is_int(end)):
            raise ValueError(
                f"{_where(where)}span #{i} {list(span)!r} must hold integers, "
                f"got {type(start).__name__}/{type(end).__name__}"
            )
        start, end = int(start), int(end)
        if not 0 <= start < end:
            raise ValueError(
                f"{_where(where)}span #{i} [{start}, {end}) is empty or negative; spans are [start, end) "
                "character offsets with 0 <= start < end"
            )
        if text_length is not None and end > text_length:
            raise ValueError(
                f"{_where(where)}span #{i} [{start}, {end}) lies outside the text of length {text_length}; "
                "spans must be character offsets into the text they were computed on"
            )
        checked.append((start, end))
    return checked


def _is_int(value: Any) -> bool:
    # numpy / torch integer scalars define __index__ too; floats do not
    return hasattr(value, "__index__")
