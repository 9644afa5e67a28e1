"""What became of one completion, in words a researcher reads: a status, the error type and message.

The executor (:mod:`procure_trl.execution`) says ``passed``, ``failed`` or ``timed_out`` with the exception's
class name; the report sorts a failure further, because "the model wrote code that does not parse" and "the
code ran and gave a wrong answer" call for different fixes.
"""

from __future__ import annotations

from typing import Any

from procure_trl.execution import ExecutionResult, Status

__all__ = ["VERDICT_STATUSES", "verdict_status", "completion_verdict"]

#: The status of a completion in ``report.json``, in the order tables list them.
VERDICT_STATUSES = ("passed", "assertion_failed", "exception", "syntax_error", "timed_out")

#: Exception types raised when the program does not compile (``IndentationError`` and ``TabError`` are
#: subclasses of ``SyntaxError``; the executor reports the class name only).
_SYNTAX_ERRORS = frozenset({"SyntaxError", "IndentationError", "TabError"})


def verdict_status(result: ExecutionResult) -> str:
    """``passed``; ``timed_out`` (wall clock or CPU time); ``syntax_error``; ``assertion_failed`` (a test's
    ``assert`` failed: the code ran and answered wrongly); ``exception`` (anything else the program raised, or
    the process ending early: the error type says which)."""
    if result.status == Status.PASSED:
        return "passed"
    if result.status == Status.TIMED_OUT:
        return "timed_out"
    if result.error_type in _SYNTAX_ERRORS:
        return "syntax_error"
    if result.error_type == "AssertionError":
        return "assertion_failed"
    return "exception"


def completion_verdict(completion: str, result: ExecutionResult) -> dict[str, Any]:
    """One completion as the report stores it: its text, status, error type and message (empty when passed)."""
    return {
        "completion": completion,
        "status": verdict_status(result),
        "error_type": result.error_type,
        "message": result.message,
    }
