"""Plots are files: matplotlib with its non-interactive backend, imported only when a plot is drawn."""

from __future__ import annotations

from typing import Any

__all__ = ["pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the ``Agg`` backend: it never opens a window and works on servers without a
    display; imported here, on first use, so that commands that draw nothing never load matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
