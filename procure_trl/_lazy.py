"""Lazy public names for a package: ``name -> module`` maps resolved on first access (PEP 562).

The packages whose names would pull in torch, transformers, trl or openai export through this, so that
``import procure_trl`` and ``procure perturb`` stay light.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return the ``__getattr__`` and ``__dir__`` of ``package`` for the ``name -> module`` map ``exports``."""
    names = sorted(exports)

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # cache: later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
