"""procure_trl: ProCURE (concept-aware counterfactual fine-tuning of code LLMs) for Hugging Face TRL.

The public API. Names are imported lazily so that the analysis and perturbation side
(``procure perturb``) never imports torch, transformers or trl.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Concept": "procure_trl.concepts",
    "ORIGINAL": "procure_trl.concepts",
    "Problem": "procure_trl.problems",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'procure_trl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs
    from procure_trl.concepts import ORIGINAL, Concept
    from procure_trl.problems import Problem
