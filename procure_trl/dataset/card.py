"""The dataset card of a built counterfactual dataset: every number computed from the built data.

The card is rendered from ``procure_trl/dataset/templates/dataset_card.md`` (shipped with the package) over a
``DatasetCardData`` whose YAML (``configs``, ``dataset_info``) is kept as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procure_trl.concepts import ORIGINAL, Concept
from procure_trl.dataset.rows import BuiltDataset, concept_counts, excluded_tasks
from procure_trl.perturb.records import CounterfactualRecord

if TYPE_CHECKING:
    from procure_trl.dataset.builder import BuildConfig

__all__ = ["TEMPLATE_PATH", "SOURCE_LICENSES", "card_variables", "mutant_table", "render_card"]

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "dataset_card.md"

#: Licence of each source benchmark, by task-id prefix: (Hub licence id, sentence for the card).
SOURCE_LICENSES = {
    "HumanEval/": ("mit", "HumanEval (Chen et al., 2021, `openai/human-eval`): MIT licence."),
    "MBPP/": ("cc-by-4.0", "MBPP (Austin et al., 2021, `google-research/mbpp`): CC BY 4.0."),
    "CodeContests/": ("cc-by-4.0", "CodeContests (Li et al., 2022, `deepmind/code_contests`): CC BY 4.0."),
}
SOURCE_NAMES = {"HumanEval/": "HumanEval", "MBPP/": "MBPP", "CodeContests/": "CodeContests"}


def _sources(task_ids: Sequence[str]) -> list[str]:
    return [prefix for prefix in SOURCE_LICENSES if any(t.startswith(prefix) for t in task_ids)]


def split_text(split: Mapping[str, Any] | None) -> str:
    """The card's sentences about the split (:func:`~procure_trl.dataset.builder.split_summary`): the test share
    of each source, the largest statement-word overlap across the split, the tasks left out."""
    if not split:
        return ""
    shares = []
    for source, counts in split["per_source"].items():
        total = counts["train"] + counts["test"]
        shares.append(f"{source or 'other'}: {counts['test']} of {total} tasks in `test`"
                      + (f" ({100 * counts['test'] / total:.1f} %)" if total else ""))
    text = "; ".join(shares) + "."
    similarity, (train_task, test_task) = split["largest_cross_similarity"], split["closest_pair"]
    if train_task is not None:
        text += (f" The largest share of statement words between a `train` and a `test` task is "
                 f"{100 * similarity:.0f} % (`{train_task}` and `{test_task}`; grouping threshold "
                 f"{100 * split['threshold']:.0f} %).")
    left_out = split["left_out"]
    if left_out:
        tasks = sorted(left_out)
        text += (f" {len(tasks)} task(s) are left out as near duplicates of `test` tasks from a benchmark kept whole "
                 f"for training ({', '.join(tasks[:5])}{', ...' if len(tasks) > 5 else ''}).")
    return text


def mutant_table(records: Sequence[CounterfactualRecord]) -> list[dict[str, Any]]:
    """The card's table of mutant pairs per concept and kind (killed, survived, timed out, not applicable), then the
    total, from every line of the ``procure mutate`` files (:func:`~procure_trl.perturb.mutate.mutation_summary`)."""
    from procure_trl.perturb.mutate import mutation_summary

    summary = mutation_summary(records)
    if not summary:
        return []
    table: list[dict[str, Any]] = [{"concept": concept, "mutation": kind, **counts}
                                   for (concept, kind), counts in summary.items()]
    total = {key: sum(counts[key] for counts in summary.values()) for key in next(iter(summary.values()))}
    return [*table, {"concept": "total", "mutation": "", **total}]


def card_variables(args: BuildConfig, built: BuiltDataset, rows: Sequence[Mapping[str, Any]],
                   records: Sequence[CounterfactualRecord], repo_id: str,
                   split: Mapping[str, Any] | None = None,
                   mutants: Sequence[CounterfactualRecord] = ()) -> dict[str, Any]:
    """Everything the card template needs, computed from the built data (no hand-typed numbers); ``split`` is the
    builder's :func:`~procure_trl.dataset.builder.split_summary`, ``mutants`` the lines of the ``procure mutate``
    files (the ``mutants`` config holds their killed pairs)."""
    from procure_trl.dataset.mutant_rows import MUTANTS_CONFIG

    task_ids = sorted({r["task_id"] for r in rows})
    prefixes = _sources(task_ids)
    unknown = [t for t in task_ids if not any(t.startswith(p) for p in SOURCE_LICENSES)]
    license_lines = [SOURCE_LICENSES[p][1] for p in prefixes]
    if unknown:
        license_lines.append(f"{len(unknown)} task(s) from other sources (e.g. `{unknown[0]}`): see their own terms.")
    split_names = sorted({s for counts in built.counts.values() for s in counts}, key=lambda s: (s != "train", s))
    count_rows = []
    for config, dd in built.configs.items():
        if config == MUTANTS_CONFIG:  # not program rows: its own table below
            continue
        concepts = [c for split in dd.values() for c in split["concept"]]
        count_rows.append({
            "config": config,
            "splits": [built.counts[config].get(s, 0) for s in split_names],
            "originals": sum(c == ORIGINAL for c in concepts),
            "counterfactuals": sum(c != ORIGINAL for c in concepts),
        })
    status = {}
    for record in records:
        status[record.status] = status.get(record.status, 0) + 1
    engine_summary = ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + " engine lines"
    excluded = excluded_tasks(records)
    if excluded:
        reasons: dict[str, list[str]] = {}
        for task, why in excluded.items():
            reasons.setdefault(why, []).append(task)
        engine_summary += "; tasks left out: " + "; ".join(
            f"{len(tasks)} with {why} ({', '.join(sorted(tasks)[:5])}{', ...' if len(tasks) > 5 else ''})"
            for why, tasks in reasons.items())
    unvalidated = sum(r.status == "valid" and r.stage == "unvalidated" for r in records)
    if unvalidated:
        engine_summary += f"; **{unvalidated} counterfactuals were not validated** (`--no-validate`)"
    counts = concept_counts(rows)
    return {
        "pretty_name": args.pretty_name,
        "sources_text": " and ".join(SOURCE_NAMES[p] for p in prefixes) or "the input problems",
        "seed": args.seed,
        "test_percent": round(100 * args.test_size),
        "test_sizes": getattr(args, "test_sizes", None),
        "split_text": split_text(split),
        "near_duplicate_percent": round(100 * getattr(args, "near_duplicate_threshold", 0.8)),
        "engine_summary": engine_summary,
        "concepts": [{"name": c.value, "category": c.category, "description": c.description}
                     for c in (Concept.parse(name, unregistered=True) for name in counts if name != ORIGINAL)],
        "split_names": split_names,
        "count_rows": count_rows,
        "concept_counts_text": ", ".join(f"`{k}` {v}" for k, v in counts.items()),
        "tokenizer": args.tokenizer,
        "prompt_format": args.prompt_format,
        "repo_id": repo_id,
        "example_config": next((c for c in built.configs if c not in ("all", MUTANTS_CONFIG)), None),
        "mutant_splits": [built.counts.get(MUTANTS_CONFIG, {}).get(s, 0) for s in split_names],
        "mutant_table": mutant_table(mutants) if MUTANTS_CONFIG in built.configs else [],
        "license_text": "\n".join(f"- {line}" for line in license_lines),
        "_licenses": sorted({SOURCE_LICENSES[p][0] for p in prefixes}) or ["other"],
        "_n_rows": len(rows),
    }


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def render_card(card_data: Any, variables: Mapping[str, Any]) -> Any:
    """Render the card template over ``card_data`` (a ``DatasetCardData`` whose YAML is kept as is)."""
    from huggingface_hub import DatasetCard

    card_data.license = variables["_licenses"][0] if len(variables["_licenses"]) == 1 else variables["_licenses"]
    card_data.pretty_name = variables["pretty_name"]
    card_data.task_categories = ["text-generation"]
    card_data.language = ["en", "code"]
    card_data.tags = ["code", "counterfactual", "procure", "trl"]
    card_data.prompt_format = variables["prompt_format"]  # machine-readable: read back by evaluation and training
    card_data.size_categories = [_size_category(variables["_n_rows"])]
    public = {k: v for k, v in variables.items() if not k.startswith("_")}  # template variables win over card data
    return DatasetCard.from_template(card_data, template_path=str(TEMPLATE_PATH), **public)
