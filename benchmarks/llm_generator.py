"""LLM generator throughput: bounded concurrency against a slow endpoint, and what the cache saves.

The endpoint is the loopback chat-completions server of the tests (``tests/openai_server.py``), made
slow on purpose (``--latency`` seconds per answer, like a hosted model) and answering like a perfect
model: with the rule engine's perturbation of the program it is asked about. Every answer goes through
the real pipeline (prompt with static-analysis facts, HTTP, parsing, validation with test execution,
spans, JSONL). Runs at several ``max_concurrency`` values, each with a fresh cache, then a rerun of
the last one on its warm cache; all in one process, side by side.

    .venv/bin/python benchmarks/llm_generator.py --problems 20 --latency 0.2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from openai_server import ChatServer, fenced, requested_concept, task_program  # noqa: E402

from procure_trl.concepts import Concept  # noqa: E402
from procure_trl.perturb.engine import derive_seed, protected_names  # noqa: E402
from procure_trl.perturb.llm.generator import LLMGenerator, LLMGeneratorConfig  # noqa: E402
from procure_trl.perturb.llm.prompts import NOT_APPLICABLE_MARKER  # noqa: E402
from procure_trl.perturbations import perturb  # noqa: E402
from procure_trl.problems import load_problems  # noqa: E402
from procure_trl.validation import ValidationConfig  # noqa: E402


def oracle_script(problems, latency: float):
    """Answer like a model that always applies the concept correctly (the rule engine's result)."""
    by_program = {p.program: p for p in problems}

    def script(body: dict) -> str:
        time.sleep(latency)
        problem = by_program[task_program(body)]
        concept = Concept.parse(requested_concept(body))
        result = perturb(problem.program, concept, seed=derive_seed(0, problem.task_id, concept),
                         protected_names=protected_names(problem))
        if result.code is None:
            return f"{NOT_APPLICABLE_MARKER} {result.reason}"
        return fenced(result.code)

    return script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="humaneval")
    parser.add_argument("--problems", type=int, default=20, help="first N problems (x 5 concepts)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the endpoint takes per answer")
    parser.add_argument("--concurrency", default="1,4,16", help="max_concurrency values to compare")
    args = parser.parse_args()

    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    problems = load_problems(args.benchmark)[: args.problems]
    levels = [int(x) for x in args.concurrency.split(",")]
    results = []
    with ChatServer(oracle_script(problems, args.latency)) as server, tempfile.TemporaryDirectory() as tmp:
        def run(label: str, concurrency: int, cache_dir: str) -> None:
            config = LLMGeneratorConfig(
                model="oracle", base_url=server.url, max_concurrency=concurrency, cache_dir=cache_dir,
                show_progress=False, request_timeout=60, validation=ValidationConfig(num_workers=2),
            )
            out = Path(tmp) / f"{label}.jsonl"
            before = server.request_count
            start = time.perf_counter()
            report = LLMGenerator(config).generate_to_jsonl(problems, list(Concept), out)
            wall = time.perf_counter() - start
            valid = sum(r.status == "valid" for r in report.rows)
            results.append((label, len(report.rows), server.request_count - before, wall, valid,
                            out.read_bytes()))

        for c in levels:
            run(f"concurrency={c}", c, str(Path(tmp) / f"cache{c}"))
        run(f"concurrency={levels[-1]}, cached rerun", levels[-1], str(Path(tmp) / f"cache{levels[-1]}"))

    base = results[0][3]
    header = f"{'run':<34} {'pairs':>5} {'requests':>8} {'valid':>5} {'wall s':>7} {'pairs/s':>7} {'speedup':>7}"
    print(f"{args.benchmark}, {len(problems)} problems x {len(Concept)} concepts, "
          f"endpoint latency {args.latency:.2f} s per answer")
    print(header)
    print("-" * len(header))
    for label, pairs, requests, wall, valid, _ in results:
        print(f"{label:<34} {pairs:>5} {requests:>8} {valid:>5} {wall:>7.2f} {pairs / wall:>7.1f} {base / wall:>6.1f}x")
    same = all(r[5] == results[0][5] for r in results)
    print(f"\noutputs byte-identical across runs: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
