"""Near-miss mutant pairs on every HumanEval + MBPP rule-engine counterfactual (seed 0): yield and speed.

Runs ``procure perturb`` (seed 0) on HumanEval and MBPP unless counterfactual files are given, then times the
mutation run (mutate + the tests, as ``procure mutate`` does it), prints the per-concept/kind table, and re-runs
every killed mutant in a fresh executor with a 6x longer timeout: a mutant that passes every test there would be a
mutant wrongly called a bug (the count must be 0).

    python benchmarks/bench_mutants.py [--counterfactuals HE.jsonl MBPP.jsonl] [--num-workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procure_trl.execution import ExecutionJob, ExecutionLimits, Executor
from procure_trl.perturb.engine import format_rejects_by_stage
from procure_trl.perturb.mutate import (
    MutationConfig,
    counterfactual_rows,
    format_mutation_table,
    killed_pairs,
    mutants_to_jsonl,
    mutation_summary,
)
from procure_trl.perturb.records import read_records
from procure_trl.problems import problems_of_tasks


def counterfactual_files(work: Path) -> list[Path]:
    paths = []
    for benchmark in ("humaneval", "mbpp"):
        path = work / f"{benchmark}_cf.jsonl"
        subprocess.run([sys.executable, "-m", "procure_trl.cli", "perturb", "--benchmark", benchmark, "--output",
                        str(path), "--seed", "0", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counterfactuals", nargs="*", help="`procure perturb` files (default: run it, seed 0)")
    parser.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = [Path(p) for p in args.counterfactuals] if args.counterfactuals else counterfactual_files(work)
        records = [r for p in paths for r in read_records(p)]
        problems = problems_of_tasks([r.task_id for r in records], None)
        rows = counterfactual_rows(records, problems, ", ".join(map(str, paths)))
        config = MutationConfig(seed=0, num_workers=args.num_workers, progress=False)
        start = time.perf_counter()
        lines = mutants_to_jsonl(rows, problems, work / "mutants.jsonl", config)
        wall = time.perf_counter() - start
    print(f"{len(rows)} valid counterfactual rows of {len({r.task_id for r in rows})} problems, "
          f"{args.num_workers} workers, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(format_mutation_table(lines))
    print(format_rejects_by_stage(lines))
    pairs = killed_pairs(lines)
    summary = mutation_summary(lines)
    concepts = sorted({concept for (concept, _), c in summary.items() if c["killed"]})
    print(f"killed pairs: {len(pairs)}; concepts with killed pairs: {len(concepts)} ({', '.join(concepts)})")
    print(f"mutation wall time (mutate + tests): {wall:.1f} s")
    # Independent re-run: every kept mutant, fresh workers, a much longer timeout.
    mutants = {(m.code, problems[m.task_id].tests) for pair in pairs for m in pair}
    start = time.perf_counter()
    with Executor(num_workers=args.num_workers, limits=ExecutionLimits(timeout=6 * config.timeout)) as executor:
        results = executor.run([ExecutionJob(code, tests) for code, tests in sorted(mutants)])
    passing = sum(r.passed for r in results)
    print(f"re-run of {len(mutants)} distinct killed mutants ({time.perf_counter() - start:.1f} s): "
          f"{passing} pass every test")
    return 1 if passing else 0


if __name__ == "__main__":
    sys.exit(main())
