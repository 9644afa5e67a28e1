"""Valid counterfactual pairs per concept on HumanEval (164) + MBPP full (974), against the targets.

Runs the same pipeline as ``procure perturb`` (rule-based perturbations, full validation including the
tests of every candidate) and prints one table for the two benchmarks together, with each concept's
target and the ratio valid / target. Takes a few minutes on 2 cores::

    python benchmarks/perturb_yield.py --num-workers 2 --output-dir outputs/yield
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from procure_trl.concepts import Concept
from procure_trl.perturb.engine import GenerationConfig, format_summary_table, generate_counterfactuals
from procure_trl.perturb.records import write_records
from procure_trl.problems import load_problems

#: minimum valid pairs per concept over HumanEval + MBPP full (the issue's acceptance figures)
TARGETS = {
    Concept.NAME_RANDOM: 900,
    Concept.NAME_SHUFFLE: 600,
    Concept.INDEPENDENT_SWAP: 700,
    Concept.IF_ELSE_FLIP: 220,
    Concept.DEF_USE_BREAK: 100,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None, help="also write each benchmark's JSONL here")
    args = parser.parse_args()

    records = []
    for benchmark in ("humaneval", "mbpp"):
        start = time.perf_counter()
        problems = load_problems(benchmark)
        config = GenerationConfig(seed=args.seed, num_workers=args.num_workers, progress=sys.stderr.isatty())
        batch = generate_counterfactuals(problems, config)
        print(f"{benchmark}: {len(problems)} problems, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if args.output_dir:
            write_records(batch, Path(args.output_dir) / f"{benchmark}_counterfactuals.jsonl")
        records.extend(batch)

    print(format_summary_table(records))
    print()
    print(f"{'concept':<18}{'valid':>7}{'target':>8}{'valid/target':>14}")
    short = 0
    for concept, target in TARGETS.items():
        valid = sum(r.concept == concept.value and r.status == "valid" for r in records)
        short += valid < target
        print(f"{concept.value:<18}{valid:>7}{target:>8}{valid / target:>14.2f}")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
