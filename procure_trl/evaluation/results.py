"""What an evaluation measured: the rows it scored (:class:`PromptRow`), each scored prompt with its completions
and verdicts (:class:`ScoredPrompt`), and the whole run (:class:`EvaluationReport`, whose :meth:`to_dict` is
``report.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procure_trl.concepts import AnyConcept
from procure_trl.evaluation.config import EvaluationConfig

__all__ = ["DEFINITIONS", "EvaluationReport", "PromptRow", "ScoredPrompt"]

DEFINITIONS = {
    "original": "benchmark prompt completed n times; program = prompt + completion, run with the problem's tests",
    "reference": "the counterfactual row's original program, cut like its counterfactual, completed n times",
    "counterfactual": "the perturbed program, cut (if_else_flip: at the flipped then-branch; otherwise after "
    "line_fraction of the solution lines), completed n times",
    "ccs.references": "per row: pass/fail of the reference completions",
    "ccs.predictions": "per row: pass/fail of the counterfactual completions",
    "ccs_expected": "the CCS expected if each row's reference and counterfactual outcomes were exchangeable "
    "(shuffled between the sides; exact hypergeometric expectation, pooled like CCS)",
    "ccs_gap": "ccs - ccs_expected, with a row-bootstrap interval (ccs_gap_ci): about 0 for a concept-invariant "
    "model at any pass rate, negative when a row's passes cluster on one side; 0 by construction at n=1",
    "pass_gap": "mean over rows of (counterfactual pass rate - reference pass rate), with a row-bootstrap "
    "interval (pass_gap_ci) and the two-sided p-value of a sign-flip permutation test (pass_gap_p)",
    "remainder_differs": "per row: the text left to complete differs between the reference and counterfactual "
    "programs",
    "dependent": "per row: the counterfactual's text left to complete holds a changed span, reads a value "
    "defined in a changed span (def-use chains), or reads an object changed code mutates; ccs_dependent scores "
    "only these rows",
}



@dataclass(frozen=True)
class PromptRow:
    """One (problem, concept) counterfactual row that was cut: the two prompts it is scored on."""

    task_id: str
    concept: AnyConcept
    reference_prompt: str
    counterfactual_prompt: str
    sites: int = 1
    """How many places the counterfactual changed (the row's ``sites``; 1 when the file does not say)."""
    variant: int | None = None
    """Which of the (problem, concept)'s counterfactuals this is (``procure perturb --variants N``); ``None`` for
    one."""
    remainder_differs: bool = True
    """The text left to complete differs between the two sides (:mod:`procure_trl.evaluation.dependence`)."""
    dependent: bool = True
    """The counterfactual's text left to complete uses a name or value the change touched."""
    reference_head: int | None = None
    """Where the reference program's trained prompt segment ends in ``reference_prompt`` (characters;
    :func:`~procure_trl.dataset.prompt_format.prompt_split`): the harness tokenizes the cut as training did."""
    counterfactual_head: int | None = None
    """The same for ``counterfactual_prompt`` and the counterfactual program."""


@dataclass
class ScoredPrompt:
    """One scored prompt: the prompt, and per completion its text and verdict (in sample order)."""

    prompt: str
    verdicts: list[dict[str, Any]]

    @property
    def passed(self) -> list[int]:
        return [int(v["status"] == "passed") for v in self.verdicts]

    @property
    def statuses(self) -> list[str]:
        return [v["status"] for v in self.verdicts]

    def to_dict(self) -> dict[str, Any]:
        """The report's record: ``prompt`` is the program start the completions continue; in the chat format
        ``user`` is the user turn the model read before it (the two as readable text, not the request key)."""
        from procure_trl.dataset.prompt_format import decode_request

        user, program_start = decode_request(self.prompt)
        return {"prompt": program_start, **({"user": user} if user is not None else {}), "passed": self.passed,
                "completions": self.verdicts}


@dataclass
class EvaluationReport:
    """Everything one run measured; :meth:`to_dict` is ``report.json``.

    Attributes:
        config: the run's settings.
        pass_at_k: ``{"original": {"pass@1": ...}, "reference": {concept: {...}}, "counterfactual": {concept: {...}}}``.
        ccs: the CCS metric's output over all rows (``None`` without counterfactual rows), with the CCS expected
            by chance, the gap to it and the paired pass-rate test.
        ccs_dependent: the same over the *dependent* rows only (those whose text left to complete uses what the
            change touched; ``None`` when there is none).
        per_concept: one summary dict per concept (rows given, scored and skipped by reason, CCS with interval,
            AME, pass@k of both sides).
        per_sites: CCS by concept and site count (how many places the counterfactual changed): one dict
            per (concept, sites) with ``rows``, ``ccs``, ``ccs_ci``, ``ame``.
        tasks: per problem: the original's prompt and completions with their verdicts, per scored concept the
            same for the reference and counterfactual prompts, and the concepts skipped.
        skipped: ``{"task_id", "concept", "reason", "message"}`` for each counterfactual row not scored.
        timeouts: completions that ran out of time (counted as fails in the scores), ``{"original": int,
            "reference": {concept: int}, "counterfactual": {concept: int}}``.
        files: paths of what was written (report, summary, plots, completion cache).
    """

    config: EvaluationConfig
    pass_at_k: dict[str, Any]
    ccs: dict[str, Any] | None
    per_concept: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    timeouts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    per_sites: list[dict[str, Any]] = field(default_factory=list)
    ccs_dependent: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "definitions": DEFINITIONS,
            "pass_at_k": self.pass_at_k,
            "ccs": self.ccs,
            "ccs_dependent": self.ccs_dependent,
            "per_concept": self.per_concept,
            "per_sites": self.per_sites,
            "skipped": self.skipped,
            "timeouts": self.timeouts,
            "tasks": self.tasks,
            "files": self.files,
        }
