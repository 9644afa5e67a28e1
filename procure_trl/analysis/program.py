"""Parsing a program once: the entry point of every analysis and perturbation.

:func:`load_program` parses and resolves scopes, and remembers the last few programs: perturbing one
program with all five concepts parses it once. The result is shared, so treat it as read-only.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from procure_trl.analysis.scopes import ScopeAnalysis, analyze_scopes


class InvalidProgramError(ValueError):
    """The source is not a Python program this version of Python can parse."""

    @classmethod
    def from_syntax_error(cls, error: SyntaxError) -> InvalidProgramError:
        line = (error.text or "").rstrip("\n")
        where = f"line {error.lineno}, column {error.offset}"
        shown = f": {line.strip()!r}" if line.strip() else ""
        return cls(
            f"cannot parse the program ({where}): {error.msg}{shown}. "
            "Pass the full program (prompt + solution) as valid Python source."
        )


def parse_program(source: str) -> ast.Module:
    """``ast.parse`` that turns a syntax error into :class:`InvalidProgramError` naming line and column."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str holding a Python program, got {type(source).__name__}")
    try:
        return ast.parse(source)
    except SyntaxError as error:
        raise InvalidProgramError.from_syntax_error(error) from None
    except ValueError as error:  # e.g. "source code string cannot contain null bytes"
        raise InvalidProgramError(f"cannot parse the program: {error}. Remove the offending characters.") from None


@lru_cache(maxsize=16)
def _load(source: str) -> ScopeAnalysis:
    return analyze_scopes(source, parse_program(source))


def load_program(source: str) -> ScopeAnalysis:
    """Parse ``source`` and resolve its scopes (cached; raises :class:`InvalidProgramError`)."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str holding a Python program, got {type(source).__name__}")
    return _load(source)
