"""De-duplication of candidates: a candidate is a duplicate only of an *accepted* one of the same problem.

The scope is one problem, across its concepts: the ``name_random`` candidate of a problem is compared
with the accepted candidates of that problem's other concepts (and with the original program, which
:meth:`~procure_trl.validation.Validator.static_check` catches), never with other problems.

A rejected candidate blocks nothing, and acceptance is decided in an order the caller fixes (concept
order within a problem), never in the order candidates happen to finish. So the same candidates give
the same verdicts whatever the concurrency or the number of test workers.
"""

from __future__ import annotations

import hashlib


def digest(text: str) -> str:
    """The SHA-256 hex digest of ``text``: how candidates are compared (exact text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AcceptedCandidates:
    """The accepted candidates of each problem, fed in a fixed order.

    Call :meth:`admit` for each candidate that passed every other check, in decision order (problem
    order, then concept order); it returns ``None`` and remembers the candidate, or says which accepted
    candidate it repeats.
    """

    def __init__(self) -> None:
        self._by_task: dict[str, dict[str, str]] = {}  # task_id -> text digest -> concept that has it

    def admit(self, task_id: str, concept: str, code: str) -> str | None:
        """``None`` when ``code`` is new for ``task_id`` (it is now accepted), else the reason to reject it,
        e.g. ``"duplicate of the accepted name_random candidate"`` (with :attr:`Stage.DUPLICATE`)."""
        accepted = self._by_task.setdefault(task_id, {})
        key = digest(code)
        if key in accepted:
            return f"duplicate of the accepted {accepted[key]} candidate"
        accepted[key] = str(concept)
        return None
