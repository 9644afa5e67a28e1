"""The control of the attention report: the same attention geometry, shifted onto unperturbed tokens.

The report compares ``m_q``, the attention mass that a query ``q`` puts on the perturbed tokens ``P``,
with the mass that the query ``q - s`` puts on the tokens ``P - s``. The shift ``s`` is the smallest one
that lands every token of ``P - s`` on an unperturbed, non-padding token. So the control has as many
keys as ``P``, each at exactly the distance from its query that its perturbed counterpart has from
``q``, and it differs only in what the keys hold. A row whose perturbed tokens start too early for
such a shift (e.g. at the very first token) has no control and is left out of both numbers.

Pure functions on single rows (lists of ints); no torch, no model.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["control_shift", "shift_left"]


def control_shift(perturbed_positions: Sequence[int], first_position: int = 0) -> int | None:
    """The smallest ``s >= 1`` with every ``p - s`` unperturbed and ``>= first_position``; ``None`` if none.

    ``first_position`` is the index of the row's first real token. For one contiguous run of ``n``
    perturbed tokens the shift is ``n`` (the ``n`` tokens just before the run).
    """
    positions = set(perturbed_positions)
    if not positions:
        return None
    for shift in range(1, min(positions) - first_position + 1):
        if not any(p - shift in positions for p in positions):
            return shift
    return None


def shift_left(mask: Sequence[int], shift: int) -> list[int]:
    """``mask`` moved ``shift`` positions earlier: entry ``i`` of the result is ``mask[i + shift]`` (0 past the end)."""
    if shift < 0:
        raise ValueError(f"shift={shift} must be >= 0")
    values = list(mask)
    return values[shift:] + [0] * min(shift, len(values))
