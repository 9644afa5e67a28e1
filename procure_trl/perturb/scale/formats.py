"""Where the code sits in a row of a Hugging Face dataset, for the formats TRL trains on.

A :class:`DatasetFormat` names the column that holds the code and how it holds it:

* ``text``: the column is a string: the completion of a standard prompt/completion row, or any code
  column (``--code-column``). The programs are its fenced Python blocks, or the whole string when it
  has no fence and parses as Python.
* ``conversational``: the column is a list of ``{"role", "content"}`` messages (``messages``, or the
  ``completion`` of a conversational prompt/completion row). The programs are the fenced Python
  blocks (or whole contents that parse) of the assistant messages.

:func:`detect_format` picks the format from the column names and the first row; :func:`code_texts`
and :func:`python_blocks` find the programs of one row. Pure functions, no ``datasets`` import.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from procure_trl.errors import UserError

TEXT = "text"
CONVERSATIONAL = "conversational"

#: Column names tried, in order, when no --code-column is given and the row is not in a TRL format.
CODE_COLUMN_CANDIDATES = ("completion", "code", "solution", "output", "response", "answer")
#: Prompt column names tried, in order, when no --prompt-column is given.
PROMPT_COLUMN_CANDIDATES = ("prompt", "instruction", "question", "problem", "text", "input")
#: Tests column names detected without --tests-column.
TESTS_COLUMN_CANDIDATES = ("tests", "test_list")

# A fenced block: ``` or ~~~, an optional info string, the body, and the same fence closing it.
_FENCE = re.compile(r"^(?P<fence>```|~~~)[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.S | re.M)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", ""})


@dataclass(frozen=True)
class DatasetFormat:
    """Which column holds the code (and how), and the optional prompt and tests columns.

    Parameters:
        kind (`str`): ``"text"`` (a string column) or ``"conversational"`` (a list of messages).
        code_column (`str`): the column holding the code: ``completion``, ``messages`` or any string column.
        prompt_column (`str` or `None`): the prompt column, when there is one (never changed).
        tests_column (`str` or `None`): Python test code (a string or a list of assert lines) run against the
            row's program; rows without it get static validation only.
    """

    kind: str
    code_column: str
    prompt_column: str | None = None
    tests_column: str | None = None

    def describe(self) -> str:
        shape = "messages" if self.kind == CONVERSATIONAL else "text"
        parts = [f"code in {self.code_column!r} ({shape})"]
        if self.prompt_column:
            parts.append(f"prompt in {self.prompt_column!r}")
        parts.append(f"tests in {self.tests_column!r}" if self.tests_column else "no tests column")
        return ", ".join(parts)


def _is_messages(value: Any) -> TypeGuard[list[Mapping[str, Any]]]:
    return isinstance(value, list) and all(isinstance(m, Mapping) and "role" in m and "content" in m for m in value)


def detect_format(
    columns: Sequence[str],
    first_row: Mapping[str, Any] | None,
    *,
    code_column: str | None = None,
    prompt_column: str | None = None,
    tests_column: str | None = None,
) -> DatasetFormat:
    """The format of a dataset with ``columns``, from the options given and the first row.

    Raises ``ValueError`` naming the columns and the option to pass when the code cannot be found.
    """
    names = list(columns)
    for option, value in (("--code-column", code_column), ("--prompt-column", prompt_column),
                          ("--tests-column", tests_column)):
        if value is not None and value not in names:
            raise UserError(f"{option} {value!r} is not a column of the dataset (columns: {', '.join(names)})")
    if code_column is None:
        if "messages" in names:
            code_column = "messages"
        else:
            code_column = next((c for c in CODE_COLUMN_CANDIDATES if c in names), None)
        if code_column is None:
            raise UserError(f"no code column found among {', '.join(names)}; name it with --code-column "
                             "(and the prompt with --prompt-column)")
    if prompt_column is None and code_column != "messages":
        prompt_column = next((c for c in PROMPT_COLUMN_CANDIDATES if c in names and c != code_column), None)
    if tests_column is None:
        tests_column = next((c for c in TESTS_COLUMN_CANDIDATES if c in names), None)
    sample = (first_row or {}).get(code_column)
    if _is_messages(sample):
        kind = CONVERSATIONAL
    elif isinstance(sample, str) or sample is None:
        kind = TEXT
    else:
        raise UserError(f"column {code_column!r} holds {type(sample).__name__}, not code text or a list of "
                         "{'role', 'content'} messages; pass the code column with --code-column")
    return DatasetFormat(kind, code_column, prompt_column, tests_column)


def python_blocks(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` offsets of the Python programs in ``text``: its fenced Python blocks that parse, or the
    whole text when it has no fence and parses. Blocks tagged with another language are left alone."""
    if not text:
        return []
    fences = list(_FENCE.finditer(text))
    if not fences:
        return [(0, len(text))] if _parses(text) else []
    blocks = []
    for match in fences:
        if match.group("info").strip().split(" ")[0].lower() in _PYTHON_TAGS and _parses(match.group("body")):
            blocks.append((match.start("body"), match.end("body")))
    return blocks


def _parses(code: str) -> bool:
    if not code.strip():
        return False
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def code_texts(row: Mapping[str, Any], fmt: DatasetFormat) -> list[tuple[int, str]]:
    """The texts of ``row`` that may hold code, as ``(message_index, text)``; the index is ``-1`` for a text
    column and the position in the message list for an assistant message."""
    value = row.get(fmt.code_column)
    if fmt.kind == TEXT:
        return [(-1, value)] if isinstance(value, str) else []
    if not _is_messages(value):
        return []
    return [(i, m["content"]) for i, m in enumerate(value)
            if m.get("role") == "assistant" and isinstance(m.get("content"), str)]


def tests_text(row: Mapping[str, Any], fmt: DatasetFormat) -> str:
    """The row's tests as Python source (``""`` when there are none): a string, or a list of lines joined."""
    if not fmt.tests_column:
        return ""
    value = row.get(fmt.tests_column)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(str(line) for line in value if line)
    return ""


def replace_text(row: Mapping[str, Any], fmt: DatasetFormat, message_index: int, text: str) -> dict[str, Any]:
    """A copy of ``row`` whose code text (or assistant message ``message_index``) is ``text``."""
    out = dict(row)
    if message_index < 0:
        out[fmt.code_column] = text
    else:
        messages = [dict(m) for m in row[fmt.code_column]]
        messages[message_index]["content"] = text
        out[fmt.code_column] = messages
    return out
