"""The control of the attention report: as many unperturbed tokens, each next to its perturbed counterpart.

The report compares ``m_q``, the attention mass that a query ``q`` puts on the perturbed tokens, with the
mass the same query puts on a control set of the same size:

* **which tokens**: each run of ``n`` consecutive perturbed tokens is paired with the ``n`` nearest earlier
  tokens that are neither perturbed nor taken by the control of another run (runs are paired first to last).
  So the control sits right before the changes it stands for, in the same context, each control token a few
  positions (about its run's length) farther from the query than its counterpart; only what the keys hold
  differs. A row without enough unperturbed tokens before its changes has no control.
* **which queries**: a control token ``c`` lies before its counterpart ``p``, so the queries in ``[c, p)``
  see the control token and not the perturbed one; counting them would favour the control (on a random
  model, whose attention is spread evenly, by a quarter). The comparison therefore uses the *matched
  queries*: the attention term's queries outside every such window, which see each perturbed token exactly
  when they see its control token.

Why not shift the whole pattern, or the queries: when a change is spread over the program (a renamed
variable, swapped branches) the smallest shift that clears every perturbed token is hundreds of tokens, and a
shifted query sees a much shorter context (on the random model: a third more mass on the control on average,
twice as much on rows with spread changes).

Pure functions on single rows; no torch, no model.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["perturbed_runs", "control_pairs", "matched_queries", "positions_mask"]


def perturbed_runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of consecutive positions, in order."""
    runs: list[tuple[int, int]] = []
    for position in sorted(set(positions)):
        if runs and runs[-1][0] + runs[-1][1] == position:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((position, 1))
    return runs


def control_pairs(perturbed: Sequence[int], first_position: int = 0) -> list[tuple[int, int]] | None:
    """``(perturbed position, control position)`` pairs, or ``None`` when some run finds too few free tokens
    before it (or there is nothing perturbed). ``first_position`` is the row's first real token: nothing before
    it (padding) is used. Within a run, the nearest control token is paired with the run's first token."""
    taken = set(perturbed)
    pairs: list[tuple[int, int]] = []
    for start, length in perturbed_runs(perturbed):
        run = list(range(start, start + length))
        position = start - 1
        while run and position >= first_position:
            if position not in taken:
                taken.add(position)
                pairs.append((run.pop(0), position))
            position -= 1
        if run:
            return None
    return pairs or None


def matched_queries(queries: Sequence[int], pairs: Sequence[tuple[int, int]]) -> list[int]:
    """``queries`` (0/1 list) without the positions in any ``[control, perturbed)`` window of ``pairs``."""
    matched = list(queries)
    for perturbed, control in pairs:
        for position in range(control, perturbed):
            matched[position] = 0
    return matched


def positions_mask(positions: Sequence[int], length: int) -> list[int]:
    """A 0/1 list of ``length`` entries with 1 at ``positions``."""
    mask = [0] * length
    for position in positions:
        mask[position] = 1
    return mask
