"""The experiment's main table: per model, per benchmark, every variant's scores and its difference against the
baseline, with task-clustered intervals combined over seeds (:mod:`procure_trl.metrics.clustered`).

Pairs: variant seed ``s`` against the baseline's seed ``s`` of the same model, evaluated on the same dataset,
over the tasks both scored. Benchmarks are told apart by their task ids (``HumanEval/``, ``MBPP/``,
``CodeContests/``), so one evaluation of a mixed test split fills one column group per benchmark. Every figure
says how many tasks, rows and seeds it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from procure_trl.metrics.clustered import (
    METHOD,
    ClusteredEstimate,
    TaskResults,
    clustered_difference,
    clustered_estimate,
    metric_specs,
    task_table,
)

if TYPE_CHECKING:
    from procure_trl.experiments.results import ExperimentResult

__all__ = ["task_results", "main_table", "main_table_markdown", "BENCHMARK_ORDER"]

#: Column groups in this order; other benchmarks follow.
BENCHMARK_ORDER = ("humaneval", "mbpp", "codecontests")
#: Names of the benchmarks in table headings.
_TITLES = {"humaneval": "HumanEval", "mbpp": "MBPP", "codecontests": "CodeContests"}
_METRIC_TITLES = {"ccs": "CCS"}


def task_results(run_dir: str) -> dict[str, TaskResults]:
    """Task id -> its results, from a ``procure evaluate`` output folder (every CCS row of a task kept)."""
    from procure_trl.evaluation.compare import load_run

    run = load_run(run_dir)
    rows: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {}
    for key, (reference, counterfactual) in run.rows.items():
        rows.setdefault(key[0], []).append((tuple(reference), tuple(counterfactual)))
    ids = list(dict.fromkeys([*run.original, *rows]))
    return {t: TaskResults(t, tuple(run.original.get(t, ())), tuple(rows.get(t, ()))) for t in ids}


def _benchmarks(task_ids: Sequence[str]) -> list[str]:
    from procure_trl.experiments.design import benchmark_of

    present = {benchmark_of(t) for t in task_ids}
    return [b for b in BENCHMARK_ORDER if b in present] + sorted(present - set(BENCHMARK_ORDER))


def _tables(runs: Sequence[Mapping[str, TaskResults]], task_ids: Sequence[str], columns: Sequence[str],
            ks: Sequence[int]) -> list[Any]:
    return [task_table([run[t] for t in task_ids], columns, ks) for run in runs]


def _estimates(specs, columns, ks, by_benchmark, runs, baseline_runs, n_bootstrap, confidence):
    """``{benchmark: {metric: ClusteredEstimate}}`` of ``runs`` (or of ``runs - baseline_runs``, seed by seed)."""
    out: dict[str, dict[str, ClusteredEstimate]] = {}
    for benchmark, ids in by_benchmark.items():
        tables = _tables(runs, ids, columns, ks)
        base = _tables(baseline_runs, ids, columns, ks) if baseline_runs is not None else None
        cells = {}
        for spec in specs:
            if base is None:
                cells[spec.name] = clustered_estimate(spec, columns, tables, n_bootstrap=n_bootstrap,
                                                      confidence=confidence)
            else:
                cells[spec.name] = clustered_difference(spec, columns, base, tables, n_bootstrap=n_bootstrap,
                                                        confidence=confidence)
        out[benchmark] = cells
    return out


def _common_tasks(runs: Sequence[Mapping[str, TaskResults]]) -> list[str]:
    """Tasks every run scored (in the first run's order)."""
    common = set(runs[0]).intersection(*runs[1:]) if runs else set()
    return [t for t in runs[0] if t in common] if runs else []


def _group(ids: Sequence[str]) -> dict[str, list[str]]:
    from procure_trl.experiments.design import benchmark_of

    return {b: [t for t in ids if benchmark_of(t) == b] for b in _benchmarks(ids)}


def main_table(result: ExperimentResult, *, ks: Sequence[int] | None = None, n_bootstrap: int = 1000,
               confidence: float = 0.95) -> dict[str, Any]:
    """The blocks of the main table, one per (model, eval dataset): every variant's clustered estimates per
    benchmark and metric over its evaluated seeds, and each variant's paired difference against the baseline.

    Args:
        result: the experiment's outcomes (only evaluated runs count).
        ks: the k of pass@k (default: those every evaluated run can estimate, of 1 and 5).
        n_bootstrap / confidence: of the intervals.
    """
    config = result.config
    loaded: dict[tuple[Any, str], dict[str, dict[int, dict[str, TaskResults]]]] = {}
    ns = []
    for outcome in result.outcomes:
        if (outcome.status.get("evaluate") or {}).get("state") != "done":
            continue
        plan = outcome.plan
        runs = task_results(plan.evaluation_dir)
        ns.append(min((len(t.original) for t in runs.values() if t.original), default=0))
        block = loaded.setdefault((plan.model, plan.eval_dataset), {})
        block.setdefault(plan.variant.name, {})[plan.seed] = runs
    ks = list(ks or [k for k in (1, 5) if ns and k <= min(ns)] or [1])
    specs = metric_specs(ks)
    columns = list(dict.fromkeys(["problems", "rows", *(c for spec in specs for c in spec.columns)]))
    blocks = []
    for (model, dataset), variants in loaded.items():
        ids = _common_tasks([run for seeds in variants.values() for run in seeds.values()])
        by_benchmark = _group(ids)
        entries = []
        for name in [v.name for v in config.variants if v.name in variants]:
            seeds = variants[name]
            entries.append({"variant": name, "seeds": sorted(seeds), "metrics": _estimates(
                specs, columns, ks, by_benchmark, [seeds[s] for s in sorted(seeds)], None, n_bootstrap, confidence)})
        differences = []
        baseline = variants.get(config.baseline) if config.baseline is not None else None
        for name in [v.name for v in config.variants if v.name in variants and v.name != config.baseline]:
            if baseline is None:
                break
            paired = sorted(set(variants[name]) & set(baseline))  # seed s against seed s, nothing else
            if not paired:
                continue
            differences.append({"variant": name, "baseline": config.baseline, "seeds": paired, "metrics": _estimates(
                specs, columns, ks, by_benchmark, [variants[name][s] for s in paired],
                [baseline[s] for s in paired], n_bootstrap, confidence)})
        blocks.append({"model": model, "model_id": (config.models or {}).get(model) if model else None,
                       "eval_dataset": dataset, "benchmarks": list(by_benchmark), "variants": entries,
                       "differences": differences})
    return {"method": METHOD, "confidence": confidence, "baseline": config.baseline,
            "metrics": [spec.name for spec in specs], "blocks": blocks}


def _cell(estimate: ClusteredEstimate | None, signed: bool = False) -> str:
    if estimate is None or estimate.value is None:
        return "n/a"
    text = f"{estimate.value:+.3f}" if signed else f"{estimate.value:.3f}"
    if estimate.interval:
        low, high = estimate.interval
        text += f" [{low:+.3f}, {high:+.3f}]" if signed else f" [{low:.3f}, {high:.3f}]"
    return text


def _basis(block: Mapping[str, Any]) -> str:
    """What each benchmark's figures rest on: tasks, CCS rows per run, seeds."""
    parts = []
    for benchmark in block["benchmarks"]:
        ccs = next((v["metrics"][benchmark].get("ccs") for v in block["variants"]), None)
        seeds = sorted({e["metrics"][benchmark][m].seeds for e in block["variants"] for m in e["metrics"][benchmark]})
        tasks = next(iter(block["variants"][0]["metrics"][benchmark].values())).tasks
        parts.append(f"{_TITLES.get(benchmark, benchmark)}: {tasks} tasks, {ccs.rows if ccs else 0} CCS rows "
                     f"({ccs.tasks if ccs else 0} tasks with rows) per run, {'/'.join(map(str, seeds))} seeds")
    return "; ".join(parts)


def main_table_markdown(table: Mapping[str, Any]) -> str:
    """One block per model (and eval dataset), one column group per benchmark, every difference against the
    same model's baseline run of the same seed."""
    metrics = table["metrics"]
    lines = ["## Main table", "",
             f"Values: mean over seeds; differences: variant seed s minus `{table['baseline']}` seed s of the same "
             f"model, averaged over seeds. Intervals ({table['confidence']:.0%}): {table['method']}.", ""]
    for block in table["blocks"]:
        title = block["model"] or "model"
        if block["model_id"]:
            title += f" (`{block['model_id']}`)"
        lines += [f"### {title}, evaluated on `{block['eval_dataset']}`", ""]
        groups = block["benchmarks"]
        header = "| run | seeds | " + " | ".join(
            f"{_TITLES.get(b, b)} {_METRIC_TITLES.get(m, m)}" for b in groups for m in metrics
        ) + " |"
        lines += [header, "|---|---|" + "---|" * (len(groups) * len(metrics))]
        for entry in block["variants"]:
            cells = [_cell(entry["metrics"][b].get(m)) for b in groups for m in metrics]
            lines.append(f"| {entry['variant']} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
        for entry in block["differences"]:
            cells = [_cell(entry["metrics"][b].get(m), signed=True) for b in groups for m in metrics]
            lines.append(f"| {entry['variant']} − {entry['baseline']} | {len(entry['seeds'])} pairs | "
                         + " | ".join(cells) + " |")
        lines += ["", f"Rests on: {_basis(block)}.", ""]
    return "\n".join(lines)


def main_table_json(table: Mapping[str, Any]) -> dict[str, Any]:
    """``table`` with every estimate as a dict (for ``experiment.json``)."""
    def convert(entries):
        return [{**e, "metrics": {b: {m: est.to_dict() for m, est in cells.items()}
                                  for b, cells in e["metrics"].items()}} for e in entries]

    return {**table, "blocks": [{**block, "variants": convert(block["variants"]),
                                 "differences": convert(block["differences"])} for block in table["blocks"]]}
