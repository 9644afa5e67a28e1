"""Concept Consistency Score (CCS): an `evaluate` metric over pass/fail results of paired completions.

A thin wrapper: the estimator and all argument checks live in ``procure_trl.metrics.ccs``.
Load it offline with ``evaluate.load(procure_trl.metrics.module_path("ccs"))`` (this folder in the installed
package; in a clone also ``evaluation/metrics/ccs``).
"""

import datasets
import evaluate

from procure_trl.metrics.ccs import DEFAULT_PERMUTATIONS, check_rows, concept_consistency_score

_CITATION = """\
@article{procure2025,
  title={Strengthening Programming Comprehension in Large Language Models through Code Generation},
  journal={arXiv preprint arXiv:2508.12620},
  eprint={2508.12620},
  archivePrefix={arXiv},
  year={2025}
}
"""

_DESCRIPTION = """\
The Concept Consistency Score measures whether a code model that solves a problem still solves it after a
semantics-preserving rewrite aimed at one programming concept (if/else flip, independent statement swap,
def-use break, variable renaming). Row i is one (problem, concept) pair: `references[i]` holds pass (1) /
fail (0) of the completions sampled for the original program, `predictions[i]` the same for the
counterfactual. Over all pairs of one original and one counterfactual completion, a pair is valid if at
least one side passes and consistent if both pass; CCS = consistent / valid, pooled over rows.
Raw CCS follows the pass rate (p / (2 - p) for a model with the same pass rate p on both sides), so the metric
also returns the CCS expected if each row's two sides were exchangeable (`ccs_expected`), the gap to it
(`ccs_gap`, with a row-bootstrap interval) and a paired sign-flip test of per-row pass rates (`pass_gap`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): per row, 0/1 results of the counterfactual's completions.
    references (`list[list[int]]`): per row, 0/1 results of the original's completions.
    concepts (`list[str]`, optional): the concept of each row; adds per-concept scores.
    confidence (`float`, default 0.95): coverage of the bootstrap interval.
    n_bootstrap (`int`, default 1000): bootstrap resamples of rows (0: no interval).
    seed (`int`, default 0): seed of the bootstrap and of the sign-flip test.
    n_permutations (`int`, default 10000): random sign patterns of the paired test (exact enumeration for few
        rows); 0 skips its p-value.
Returns:
    ccs (`float` or `None`): pooled consistent / valid pairs; `None` (with a warning) when no pair is valid.
    ccs_ci (`tuple[float, float]` or `None`): percentile bootstrap interval over rows.
    ccs_expected (`float` or `None`): the CCS expected if each row's outcomes were shuffled between the sides.
    ccs_gap (`float` or `None`), ccs_gap_ci (`tuple` or `None`): ccs - ccs_expected and its bootstrap interval.
    pass_gap (`float`), pass_gap_ci (`tuple` or `None`), pass_gap_p (`float` or `None`): mean over rows of the
        counterfactual minus the original pass rate, its bootstrap interval and the sign-flip test's p-value.
    ccs_per_concept, ccs_ci_per_concept, ame_per_concept, pairs_per_concept, and `<key>_per_concept` for each
        of the six keys above (`dict`): per concept.
    consistent_pairs, valid_pairs (`int`): the pooled pair counts.
    ame (`float` or `None`): mean |pass rate(counterfactual) - pass rate(original)| over rows not
        all-fail on both sides.
    rows (`int`): number of rows.
Examples:
    >>> from procure_trl.metrics import module_path
    >>> ccs = evaluate.load(module_path("ccs"))
    >>> out = ccs.compute(predictions=[[1, 0]], references=[[1, 1, 0]], concepts=["if_else_flip"])
    >>> round(out["ccs"], 2)
    0.4
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CCS(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Rows hold variable numbers of completions: a sequence of int64 per row.
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2508.12620"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add rows of 0/1 results; each value is checked before it is stored."""
        # Check before Arrow casts the rows to int64: the cast would silently turn 1.5 into 1.
        if predictions is not None:
            check_rows("predictions", predictions)
        if references is not None:
            check_rows("references", references)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, concepts=None, confidence=0.95, n_bootstrap=1000, seed=0,
                 n_permutations=DEFAULT_PERMUTATIONS):
        # `concepts` and the bootstrap settings are not features: evaluate passes them through as kwargs.
        return concept_consistency_score(
            predictions=predictions,
            references=references,
            concepts=concepts,
            confidence=confidence,
            n_bootstrap=n_bootstrap,
            seed=seed,
            n_permutations=n_permutations,
        )
