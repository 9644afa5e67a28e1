"""Metric estimators (pure Python) and the ``evaluate`` modules shipped with the package.

:mod:`procure_trl.metrics.pass_at_k` and :mod:`procure_trl.metrics.ccs` are the estimators;
:mod:`procure_trl.metrics.functional_correctness` executes candidates and scores them. The ``evaluate``
modules in ``procure_trl/metrics/evaluate_modules/<name>/`` (also reachable as the repository's
``evaluation/metrics/<name>``) are thin wrappers over these functions; :func:`module_path` gives their folder
in the installed package, so ``evaluate.load(module_path("ccs"))`` works from a wheel, offline.
"""

from __future__ import annotations

from pathlib import Path

from procure_trl.errors import UserError

__all__ = ["METRIC_MODULES", "module_path"]

#: The ``evaluate`` modules this package ships (each is a folder holding ``<name>.py`` and its card).
METRIC_MODULES = ("pass_at_k", "ccs")

_MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"


def module_path(name: str) -> str:
    """The folder of the ``evaluate`` module ``name`` (``"pass_at_k"`` or ``"ccs"``): pass it to ``evaluate.load``.

    >>> import evaluate  # doctest: +SKIP
    >>> ccs = evaluate.load(module_path("ccs"))  # doctest: +SKIP
    """
    if name not in METRIC_MODULES:
        raise UserError(f"unknown metric module {name!r}; procure_trl ships {', '.join(METRIC_MODULES)}")
    path = _MODULES_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"metric module {name!r} is missing from the installed package ({path}); reinstall procure_trl"
        )
    return str(path)
