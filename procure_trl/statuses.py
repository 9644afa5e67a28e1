"""The ``status`` of an engine output line (``procure perturb``, rule-based or LLM): one definition for all.

* ``valid``: a counterfactual was produced and passed every validation step;
* ``not_applicable``: the concept has nothing to act on in this program (the reason says why);
* ``rejected``: a candidate (or the input row) failed a step; ``stage`` and ``reason`` say which and why.
"""

from __future__ import annotations

VALID = "valid"
NOT_APPLICABLE = "not_applicable"
REJECTED = "rejected"

#: Every status, in the order tables list them.
STATUSES = (VALID, NOT_APPLICABLE, REJECTED)
