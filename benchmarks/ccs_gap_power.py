"""Power of the CCS gap interval and of the paired pass-rate test, by simulation on the real rows of the
HumanEval + MBPP test split (the figures quoted in docs/evaluation.md).

No model. The rows are those ``procure evaluate`` scores on the default test split (made as in
``tests/ccs_simulation.py``: rule engine, dataset builder split, harness cuts); a simulated model passes each
reference completion with probability ``p_ref`` and each counterfactual completion with ``p_cf``, independently.
For each setting, ``--seeds`` simulated evaluations are scored with the package's own functions and the table
gives how often

* ``gap CI excl. 0``: the row-bootstrap interval of ``ccs_gap`` excludes 0,
* ``pass p<alpha``: the sign-flip test of the per-row pass rates rejects at ``--alpha``,
* ``pass CI excl. 0``: the row-bootstrap interval of ``pass_gap`` excludes 0.

With ``p_ref == p_cf`` (a concept-invariant model) these shares are false-positive rates; otherwise power.
About half a minute on one core::

    python benchmarks/ccs_gap_power.py --seeds 200
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ccs_simulation import covers_zero, default_samples, gap_results, split_test_rows

#: (p_ref, p_cf): invariant models, then counterfactual pass rate half the reference's at falling pass rates
OVERALL = [(0.2, 0.2), (0.5, 0.5), (0.8, 0.8), (0.6, 0.3), (0.4, 0.2), (0.2, 0.1), (0.1, 0.05)]
#: effects shown per concept
PER_CONCEPT = [(0.6, 0.3), (0.2, 0.1)]


def shares(rows: int, n: int, p_ref: float, p_cf: float, seeds: int, permutations: int, alpha: float) -> list[float]:
    """Share of the simulated evaluations whose gap interval, pass-rate test and pass-gap interval reject."""
    results = gap_results(seed=1, seeds=seeds, rows=rows, n=n, p_reference=p_ref, p_counterfactual=p_cf,
                          n_permutations=permutations)
    gap = np.mean([not covers_zero(r["ccs_gap_ci"]) for r in results]) if n > 1 else float("nan")
    test = np.mean([r["pass_gap_p"] is not None and r["pass_gap_p"] < alpha for r in results])
    interval = np.mean([not covers_zero(r["pass_gap_ci"]) for r in results])
    return [float(gap), float(test), float(interval)]


def _line(label: str, rows: int, n: int, p_ref: float, p_cf: float, values: list[float]) -> str:
    cells = ["n/a (0 by construction)" if np.isnan(v) else f"{v:.0%}" for v in values]
    return f"| {label} | {rows} | {n} | {p_ref:g} vs {p_cf:g} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="simulated evaluations per setting")
    parser.add_argument("--n-permutations", type=int, default=1000, help="sign patterns of the paired test")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the paired test")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    split = split_test_rows()
    n = default_samples()
    run = partial(shares, seeds=args.seeds, permutations=args.n_permutations, alpha=args.alpha)
    print(f"{len(split)} scored rows in the test split ({split.count(dependent_only=True)} dependent); "
          f"{args.seeds} seeds per setting, 95% intervals, paired test at alpha={args.alpha}\n")
    print("| rows | count | n | pass rate ref vs cf | gap CI excl. 0 | pass p<alpha | pass CI excl. 0 |")
    print("|---|---|---|---|---|---|---|")
    for p, q in OVERALL:
        print(_line("all", len(split), n, p, q, run(len(split), n, p, q)))
    print(_line("300 rows", 300, n, 0.2, 0.1, run(300, n, 0.2, 0.1)))
    for p, q in [(0.5, 0.5), (0.6, 0.3), (0.2, 0.1)]:
        print(_line("all, greedy", len(split), 1, p, q, run(len(split), 1, p, q)))
    for concept in sorted(set(split.concepts)):
        for dependent_only in (False, True):
            rows = split.count(concept, dependent_only=dependent_only)
            label = f"{concept}{' dependent' if dependent_only else ''}"
            for p, q in PER_CONCEPT:
                print(_line(label, rows, n, p, q, run(rows, n, p, q)))
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
