"""What an experiment did: each run's outcome (:class:`RunOutcome`) and the whole experiment's
(:class:`ExperimentResult`), which the table, the plots and the comparison are written from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procure_trl.experiments.config import ExperimentConfig, RunPlan

__all__ = ["ExperimentResult", "RunOutcome"]


@dataclass
class RunOutcome:
    """What happened to one (variant, seed) run.

    Attributes:
        plan: the run.
        state: ``"done"`` (trained and evaluated), ``"skipped"`` (both were complete already) or ``"failed"``.
        trained / evaluated: whether this call trained / evaluated (``False`` when reused or failed).
        error: the failure, one line (``None`` unless failed).
        status: the run's ``status.json`` content.
    """

    plan: RunPlan
    state: str
    trained: bool = False
    evaluated: bool = False
    error: str | None = None
    status: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    """Every run's outcome and the files written (table, comparison, plots)."""

    config: ExperimentConfig
    outcomes: list[RunOutcome]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.state == "failed"]
