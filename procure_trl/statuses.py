"""The ``status`` and ``stage`` of an engine output line (``procure perturb``, rule-based or LLM): one definition
for all.

Statuses:

* ``valid``: a counterfactual was produced and passed every validation step;
* ``not_applicable``: the concept has nothing to act on in this program (the reason says why);
* ``rejected``: a candidate (or the input row) failed a step; ``stage`` and ``reason`` say which and why.

:class:`Stage` names the step that decided a line.
"""

from __future__ import annotations

from enum import Enum

VALID = "valid"
NOT_APPLICABLE = "not_applicable"
REJECTED = "rejected"

#: Every status, in the order tables list them.
STATUSES = (VALID, NOT_APPLICABLE, REJECTED)


class Stage(str, Enum):
    """The step that decided an output line (its ``stage`` field). A ``str`` enum: ``Stage.INPUT == "input"``."""

    INPUT = "input"
    """The input row is bad (invalid JSON, missing fields, a program that does not parse)."""
    PERTURBATION = "perturbation"
    """The generator found nothing to change (``not_applicable``) or crashed on the program."""
    ENDPOINT = "endpoint"
    """The LLM endpoint failed for this pair after its retries."""
    ANSWER = "answer"
    """The LLM's answer held no usable code block."""
    DUPLICATE = "duplicate"
    """Validation: the same text as the original program or as an accepted candidate of the same problem."""
    PARSE = "parse"
    """Validation: not valid Python."""
    NO_OP = "no-op"
    """Validation: the same program as the original (formatting or comments only)."""
    CONCEPT = "concept"
    """Validation: the concept's change, and only it, did not happen."""
    SPANS = "spans"
    """Validation: the changed spans are malformed or miss a change."""
    ORIGINAL = "original"
    """Validation: the original program fails its own tests (the problem is broken)."""
    EXECUTION = "execution"
    """Validation: the candidate fails the problem's tests."""
    PASSED = "passed"
    """Validation: every check passed."""
    UNVALIDATED = "unvalidated"
    """Validation was skipped (``--no-validate``)."""
    KILLED = "killed"
    """``procure mutate``: the mutant fails the problem's tests (a kept mutant: a bug)."""
    SURVIVED = "survived"
    """``procure mutate``: the mutant passes every test of the problem; dropped, never called a bug."""

    def __str__(self) -> str:  # f-strings and tables show the name, not "Stage.X"
        return self.value
