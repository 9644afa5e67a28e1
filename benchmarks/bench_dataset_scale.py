"""Rows/s and peak memory of ``procure perturb --dataset`` with each engine, on a synthetic code dataset.

    python benchmarks/bench_dataset_scale.py [--rows 20000] [--tested-rows 20000] [--large-rows 80000]
                                             [--no-ray] [--no-tests]

The dataset: MBPP's reference solutions (all 974), copied with varied names (copy ``c`` renames the function
``f`` to ``f_v<c>`` in the code and in its tests) until there are ``--rows`` rows, written as Parquet
(``prompt``, ``completion``, and for the tested variant ``tests``) in row groups of 1,000 rows. Each
configuration runs ``procure_trl.perturb.scale.perturb_dataset`` in a fresh Python process with a cold datasets
cache; this script samples that process and all its descendants (the datasets.map workers, the executors,
the local Ray's raylet, GCS and workers) every 0.2 s and reports two peaks of their summed memory:

* private: anonymous memory (``RssAnon``: heaps, Arrow buffers, Python objects), what the job holds;
* resident: ``VmRSS``, which also counts the pages of memory-mapped files it has read (the Arrow files of
  datasets' cache, shared libraries). Those are page cache the kernel reclaims under pressure, and they
  grow with the files a run reads, so the memory-growth ratio is taken on the private peak.

Rows/s counts input rows over the wall time of ``perturb_dataset`` (interpreter start excluded).

Table: one process, ``num_proc=2`` and Ray local (2 CPUs) without tests, then with tests (every row's
tests run in the executor), with ratios against one process on the same input; then one process with
``streaming=True``, and both single-process engines on ``--large-rows`` rows, with ratios against the same
engine on ``--rows`` rows. All lines come from this one run.
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
from procure_trl.perturb.scale import DatasetPerturbConfig, perturb_dataset
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


#: Rows per row group of the synthetic Parquet files. Reading Parquet holds one row group at a time, so a
#: file written as a single huge row group (``Dataset.to_parquet``'s default for small rows) would make the
#: reader's memory grow with the file; Hub datasets come in row groups of about this size.
ROW_GROUP_ROWS = 1_000


def write_parquet(rows: list[dict], path: Path) -> Path:
    from datasets import Dataset

    Dataset.from_list(rows).to_parquet(str(path), batch_size=ROW_GROUP_ROWS)
    return path


def _memory_kib(pid: int) -> tuple[int, int]:
    """``(RssAnon, VmRSS)`` of one process in KiB, from ``/proc/PID/status``; zeros once it has exited."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmRSS"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields.get("RssAnon", 0), fields.get("VmRSS", 0)


def _tree_memory(pid: int) -> tuple[int, int]:
    """Summed ``(private, resident)`` bytes of ``pid`` and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        pids = [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0, 0
    kib = [_memory_kib(p) for p in pids]
    return sum(k[0] for k in kib) * 1024, sum(k[1] for k in kib) * 1024


def measure(options: dict) -> dict:
    """Run one configuration in a fresh process; its result plus the peak private and resident memory of its
    process tree (MiB)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory() as cache:
        env["HF_DATASETS_CACHE"] = cache  # a cold cache: nothing reused from an earlier configuration
        process = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(options)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        private = resident = 0
        while process.poll() is None:
            sample = _tree_memory(process.pid)
            private, resident = max(private, sample[0]), max(resident, sample[1])
            time.sleep(0.2)
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"configuration {options} failed:\n{err[-3000:]}")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result["private_mb"], result["resident_mb"] = private / 2**20, resident / 2**20
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
    variants = [
        ("no tests", write_parquet(synthetic_rows(args.rows, False, args.mbpp_dir), work / "plain.parquet"), args.rows)
    ]
    if not args.no_tests:
        tested = write_parquet(synthetic_rows(args.tested_rows, True, args.mbpp_dir), work / "tested.parquet")
        variants.append(("tests", tested, args.tested_rows))
    engines = [("one process", {"num_proc": 1}), ("num_proc=2", {"num_proc": 2})]
    if not args.no_ray:
        engines.append(("Ray local (2 CPUs)", {"engine": "ray", "num_proc": 2}))

    table = []
    for variant, path, rows in variants:
        baseline = None
        for name, engine in engines:
            result = measure({"dataset": str(path), "output_dir": str(work / "out"), "batch_size": args.batch_size,
                              **engine})
            baseline = baseline or result
            table.append(_line(variant, rows, name, result, baseline, rows))
    # memory against input size: each single-process engine on --rows, then on --large-rows rows
    plain = variants[0][1]
    streaming = measure({"dataset": str(plain), "output_dir": str(work / "out"), "batch_size": args.batch_size,
                         "streaming": True})
    table.append(_line("no tests", args.rows, "one process, streaming", streaming, table[0][-1], args.rows))
    large = write_parquet(synthetic_rows(args.large_rows, False, args.mbpp_dir), work / "large.parquet")
    for name, options, baseline in (("one process", {}, table[0][-1]), ("one process, streaming", {"streaming": True},
                                                                        streaming)):
        result = measure({"dataset": str(large), "output_dir": str(work / "out"), "batch_size": args.batch_size,
                          **options})
        table.append(_line("no tests", args.large_rows, name, result, baseline, args.rows))

    header = ("input", "rows", "engine", "rows/s", "x one process", "private MiB", "x one process", "resident MiB",
              "x one process", "counterfactuals", "tested originals")
    print(f"CPUs: {os.cpu_count()}, batch size {args.batch_size}; ratios against one process on the same input "
          f"(the {args.large_rows}-row lines against the same engine on {args.rows} rows)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * 8) + "|")
    for line in table:
        print("| " + " | ".join(line[:-1]) + " |")


def _line(variant: str, rows: int, engine: str, result: dict, baseline: dict, baseline_rows: int) -> tuple:
    """One table line (strings), with the result itself last so later lines can use it as their baseline."""
    rate, base_rate = rows / result["seconds"], baseline_rows / baseline["seconds"]
    print(f"  {variant}, {rows} rows, {engine}: {rate:.1f} rows/s, private {result['private_mb']:.0f} MiB, "
          f"resident {result['resident_mb']:.0f} MiB", file=sys.stderr)
    return (variant, str(rows), engine, f"{rate:.1f}", f"{rate / base_rate:.2f}", f"{result['private_mb']:.0f}",
            f"{result['private_mb'] / baseline['private_mb']:.2f}", f"{result['resident_mb']:.0f}",
            f"{result['resident_mb'] / baseline['resident_mb']:.2f}", str(result["counterfactuals"]),
            str(result["tested"]), result)

if __name__ == "__main__":
    main()
