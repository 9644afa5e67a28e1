"""Rows/s and peak memory of ``procure perturb --dataset`` with each engine, on a synthetic code dataset.

    python benchmarks/bench_dataset_scale.py [--rows 20000] [--tested-rows 20000] [--large-rows 80000]
                                             [--no-ray] [--no-tests]

The dataset: MBPP's reference solutions (all 974), copied with varied names (copy ``c`` renames the function
``f`` to ``f_v<c>`` in the code and in its tests) until there are ``--rows`` rows, written as Parquet
(``prompt``, ``completion``, and for the tested variant ``tests``). Each configuration runs
``procure_trl.scale.perturb_dataset`` in a fresh Python process; this script samples that process and all
its descendants (the datasets.map workers, the executors, the local Ray's raylet, GCS and workers) every
0.2 s and reports the peak of their summed resident memory. Rows/s counts input rows over the wall time
of ``perturb_dataset`` (interpreter start excluded).

Table: one process, ``num_proc=2`` and Ray local (2 CPUs) without tests, then with tests (every row's
tests run in the executor), then one process on ``--large-rows`` rows, with the ratios against one process
on ``--rows`` rows, all measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_CHILD = """
import json, sys, time
from procure_trl.scale import DatasetPerturbConfig, perturb_dataset
options = json.loads(sys.argv[1])
start = time.perf_counter()
result = perturb_dataset(DatasetPerturbConfig(**options))
print("RESULT " + json.dumps({"seconds": time.perf_counter() - start, "originals": result.counts.originals,
                              "counterfactuals": result.counts.counterfactuals,
                              "tested": result.counts.originals_tested}))
"""


def synthetic_rows(count: int, with_tests: bool, mbpp_dir: str | None) -> list[dict]:
    """MBPP solutions copied with the function renamed per copy, ``count`` rows."""
    from procure_trl.problems import load_mbpp

    problems = load_mbpp(mbpp_dir)
    rows = []
    copy = 0
    while len(rows) < count:
        for problem in problems:
            if len(rows) == count:
                break
            name = problem.entry_point
            renamed = f"{name}_v{copy}"
            rename = re.compile(rf"\b{re.escape(name)}\b")
            row = {"prompt": problem.prompt.split("\n")[0] if problem.prompt.strip() else f"Write {renamed}.",
                   "completion": rename.sub(renamed, problem.program)}
            if with_tests:
                row["tests"] = rename.sub(renamed, problem.tests)
            rows.append(row)
        copy += 1
    return rows


def write_parquet(rows: list[dict], path: Path) -> Path:
    from datasets import Dataset

    Dataset.from_list(rows).to_parquet(str(path))
    return path


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(options: dict) -> dict:
    """Run one configuration in a fresh process; its result plus the peak resident memory of its process tree."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory() as cache:
        env["HF_DATASETS_CACHE"] = cache  # a cold cache: nothing reused from an earlier configuration
        process = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(options)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.2)
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"configuration {options} failed:\n{err[-3000:]}")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result["peak_mb"] = peak / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the synthetic dataset (default 20000)")
    parser.add_argument("--tested-rows", type=int, default=20_000, help="rows of the variant with tests")
    parser.add_argument("--large-rows", type=int, default=80_000, help="rows of the memory-growth check")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mbpp-dir", default=os.environ.get("PROCURE_MBPP_DIR"),
                        help="folder with mbpp.jsonl (default: $PROCURE_MBPP_DIR, else the Hub)")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray configurations")
    parser.add_argument("--no-tests", action="store_true", help="leave out the variant with tests")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_dataset_scale_"))
    variants = [("no tests", write_parquet(synthetic_rows(args.rows, False, args.mbpp_dir), work / "plain.parquet"), args.rows)]
    if not args.no_tests:
        variants.append(("tests", write_parquet(synthetic_rows(args.tested_rows, True, args.mbpp_dir), work / "tested.parquet"),
                         args.tested_rows))
    engines = [("one process", {"num_proc": 1}), ("num_proc=2", {"num_proc": 2})]
    if not args.no_ray:
        engines.append(("Ray local (2 CPUs)", {"engine": "ray", "num_proc": 2}))

    table = []
    for variant, path, rows in variants:
        baseline = None
        for name, engine in engines:
            options = {"dataset": str(path), "output_dir": str(work / "out"), "batch_size": args.batch_size, **engine}
            result = measure(options)
            rate = rows / result["seconds"]
            baseline = baseline or (rate, result["peak_mb"])
            table.append((variant, rows, name, rate, rate / baseline[0], result["peak_mb"],
                          result["peak_mb"] / baseline[1], result["counterfactuals"], result["tested"]))
            print(f"  {variant}, {name}: {rate:.1f} rows/s, peak {result['peak_mb']:.0f} MiB", file=sys.stderr)
    plain_baseline = table[0]
    large = write_parquet(synthetic_rows(args.large_rows, False, args.mbpp_dir), work / "large.parquet")
    result = measure({"dataset": str(large), "output_dir": str(work / "out"), "batch_size": args.batch_size})
    rate = args.large_rows / result["seconds"]
    table.append(("no tests", args.large_rows, "one process", rate, rate / plain_baseline[3], result["peak_mb"],
                  result["peak_mb"] / plain_baseline[5], result["counterfactuals"], result["tested"]))

    header = ("input", "rows", "engine", "rows/s", "x one process", "peak MiB", "x one process", "counterfactuals",
              "tested originals")
    print(f"CPUs: {os.cpu_count()}, batch size {args.batch_size}; ratios against one process on the same input "
          f"(the {args.large_rows}-row line against one process on {args.rows} rows)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * 6) + "|")
    for variant, rows, name, rate, speedup, peak, growth, cfs, tested in table:
        print(f"| {variant} | {rows} | {name} | {rate:.1f} | {speedup:.2f} | {peak:.0f} | {growth:.2f} | {cfs} | "
              f"{tested} |")


if __name__ == "__main__":
    main()
