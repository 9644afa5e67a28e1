"""Validation of candidate counterfactual programs: parsing, the concept check, the changed spans, the
problem's tests in a sandbox, and de-duplication against accepted candidates.

The same pipeline validates the rule-based and the LLM generator's candidates; its concept checks
compare the ASTs of original and candidate and never trust what a generator reports.
"""

from procure_trl.validation.concept_checks import (
    check_concept,
    check_def_use,
    check_flip,
    check_rename,
    check_swap,
    is_negation,
)
from procure_trl.validation.duplicates import AcceptedCandidates
from procure_trl.validation.pipeline import (
    REJECTED,
    VALID,
    Candidate,
    ValidationConfig,
    Validator,
    Verdict,
    check_spans,
)

__all__ = [
    "AcceptedCandidates",
    "REJECTED",
    "VALID",
    "Candidate",
    "ValidationConfig",
    "Validator",
    "Verdict",
    "check_concept",
    "check_def_use",
    "check_flip",
    "check_rename",
    "check_spans",
    "check_swap",
    "is_negation",
]
