"""``procure attention-report``: measure, then write ``attention_report.json`` and ``attention_by_layer.png``."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from procure_trl.attention_report.config import AttentionReportConfig
from procure_trl.attention_report.examples import AttentionExample, collate_left, prepare_examples
from procure_trl.attention_report.measure import measure_batch
from procure_trl.attention_report.plot import plot_attention_by_layer
from procure_trl.errors import UserError

__all__ = ["run_attention_report", "measure_examples", "summarize", "format_summary", "CONTROL_DESCRIPTION"]

REPORT_FILE = "attention_report.json"
PLOT_FILE = "attention_by_layer.png"
CONTROL_DESCRIPTION = (
    "as many unperturbed tokens: each run of n perturbed tokens is paired with the n nearest earlier tokens that "
    "are neither perturbed nor taken by another run's control (control_offset: how many tokens farther from the "
    "queries the control lies, mean over pairs)"
)
MATCHED_DESCRIPTION = (
    "the queries outside every [control token, its perturbed token) window: they see each perturbed token exactly "
    "when they see its control; perturbed_matched and control are averaged over them"
)


def load_model(config: AttentionReportConfig):
    """``(model, tokenizer)``: the base model on SDPA switched to the concept-aware attention, with the adapter
    when one is given, in eval mode on the configured device."""
    from procure_trl.training.attention import enable_concept_attention

    # enable_concept_attention: the loss's attention function; ValueError when the model cannot use it
    model, tokenizer = config.load(attn_implementation="sdpa", prepare=enable_concept_attention)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def measure_examples(model, examples: Sequence[AttentionExample], layers: Sequence[int], *, pad_token_id: int,
                     batch_size: int = 8) -> dict[str, torch.Tensor]:
    """The values of :func:`~procure_trl.attention_report.measure.measure_batch`, ``(layers, rows)`` each, rows in
    the order of ``examples``. Rows are batched by length (less padding); results are put back in order."""
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    out: dict[str, torch.Tensor] = {}
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate_left([examples[i] for i in chosen], pad_token_id).items()}
        for key, values in measure_batch(model, batch, layers).items():
            out.setdefault(key, torch.zeros(len(layers), len(examples)))[:, chosen] = values.float().cpu()
    return out


def _mean_sem(values: torch.Tensor) -> dict[str, float | None]:
    n = values.numel()
    if n == 0:
        return {"mean": None, "sem": None}
    sem = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0
    return {"mean": float(values.mean()), "sem": sem}


def _columns(values: dict[str, torch.Tensor], rows: Sequence[int], matched: Sequence[int]) -> dict[str, torch.Tensor]:
    """The loss's quantity over ``rows``; the matched comparison over those of ``rows`` with matched queries."""
    matched_rows = set(matched)
    chosen = {"perturbed": list(rows)}
    chosen["perturbed_matched"] = chosen["control"] = [i for i in rows if i in matched_rows]
    return {key: values[key][:, columns] for key, columns in chosen.items()}


def summarize(values: dict[str, torch.Tensor], layers: Sequence[int], concepts: Sequence[str | None],
              matched: Sequence[int]) -> dict[str, Any]:
    """Per-layer mean and standard error over rows, the mean over layers, and per-concept per-layer means.

    ``matched``: the rows with matched queries, the only ones ``perturbed_matched`` and ``control`` average over.
    """
    every = _columns(values, range(len(concepts)), matched)
    by_concept: dict[str, Any] = {}
    for concept in sorted({c or "unknown" for c in concepts}):
        part = _columns(values, [i for i, c in enumerate(concepts) if (c or "unknown") == concept], matched)
        by_concept[concept] = {"rows": part["perturbed"].shape[1], "matched_rows": part["control"].shape[1]} | {
            key: [_mean_sem(v)["mean"] for v in columns] for key, columns in part.items()
        }
    return {
        "rows": every["perturbed"].shape[1],
        "matched_rows": every["control"].shape[1],
        "layers": [{"layer": layer} | {key: _mean_sem(columns[i]) for key, columns in every.items()}
                   for i, layer in enumerate(layers)],
        "mean_over_layers": {key: _mean_sem(columns.mean(dim=0))["mean"] for key, columns in every.items()},
        "by_concept": by_concept,
    }


def _per_row(examples: Sequence[AttentionExample], measured: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    rows = []
    for j, example in enumerate(examples):
        entry: dict[str, Any] = {
            "row": example.row, "task_id": example.task_id, "concept": example.concept,
            "perturbed_tokens": sum(example.perturbation_mask), "queries": sum(example.query_mask),
            "matched_queries": sum(example.matched_query_mask), "control_offset": example.control_offset,
        }
        for name, values in measured.items():
            entry[name] = {key: [float(v) for v in column[:, j]] if entry["matched_queries"] or key == "perturbed"
                           else None for key, column in values.items()}
        rows.append(entry)
    return rows


def _adapter_off(model):
    """Context in which a PEFT model runs as its base model (a no-op context for a plain model)."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def run_attention_report(config: AttentionReportConfig) -> dict[str, Any]:
    """Measure the base model (and the adapter when given) on the dataset split; write the JSON and the plot.

    Raises:
        ValueError: the model, adapter or dataset cannot be used (the message names it), the split has no
            counterfactual row that can be measured, or the adapter was trained on tasks of the split (unless
            ``allow_train_overlap``) or on another base model (unless ``allow_base_mismatch``).
        FileNotFoundError: the dataset is a local path that does not exist.
    """
    from procure_trl.dataset.rows import load_dataset_split
    from procure_trl.evaluation.guards import check_adapter_base, check_train_overlap

    dataset = load_dataset_split(config.dataset, config.dataset_config, config.split)
    if config.adapter and not config.allow_base_mismatch:
        check_adapter_base(config.adapter, config.model)
    if config.adapter and not config.allow_train_overlap and "task_id" in dataset.column_names:
        check_train_overlap(config.adapter, set(dataset["task_id"]))
    model, tokenizer = load_model(config)
    prepared = prepare_examples(dataset, dataset.column_names, tokenizer, max_length=config.max_length,
                                limit=config.limit, dataset_name=config.split)
    if not prepared.examples:
        raise UserError(
            f"dataset {config.dataset!r} ({config.dataset_config}/{config.split}): no counterfactual row to measure "
            f"({prepared.rows} rows, {prepared.originals} originals, skipped: {prepared.skipped or 'none'})"
        )
    base = model.get_base_model() if config.adapter else model
    layers = list(range(base.config.get_text_config().num_hidden_layers))
    measure = lambda: measure_examples(model, prepared.examples, layers, pad_token_id=tokenizer.pad_token_id,  # noqa: E731
                                       batch_size=config.batch_size)
    with _adapter_off(model):
        measured = {"base": measure()}
    if config.adapter:
        measured["adapter"] = measure()

    concepts = [e.concept for e in prepared.examples]
    matched = [i for i, e in enumerate(prepared.examples) if any(e.matched_query_mask)]
    os.makedirs(config.output_dir, exist_ok=True)
    json_path, png_path = os.path.join(config.output_dir, REPORT_FILE), os.path.join(config.output_dir, PLOT_FILE)
    results = {name: summarize(values, layers, concepts, matched) for name, values in measured.items()}
    report = {
        "model": config.model, "adapter": config.adapter, "dataset": config.dataset,
        "dataset_config": config.dataset_config, "split": config.split, "max_length": config.max_length,
        "rows": {"in_split": prepared.rows, "originals": prepared.originals,
                 "counterfactual": len(prepared.examples) + sum(prepared.skipped.values()),
                 "measured": len(prepared.examples), "matched": len(matched), "skipped": prepared.skipped},
        "queries": "completion tokens at or after the first perturbed completion token (the attention term's queries)",
        "matched_queries": MATCHED_DESCRIPTION,
        "control": CONTROL_DESCRIPTION,
        "control_offset": _mean_sem(torch.tensor([e.control_offset for e in prepared.examples])),
        "results": results,
        "per_row": _per_row(prepared.examples, measured),
        "files": {"report": json_path, "plot": png_path},
    }
    name = os.path.basename(config.model.rstrip("/"))
    plot_attention_by_layer(results, png_path, title=f"{name}: attention of completion queries on perturbed tokens "
                                                     f"({config.dataset_config}/{config.split})")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return report


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_summary(report: dict[str, Any]) -> str:
    """A Markdown table: per layer and model, ``m_q`` over the attention term's queries, then the mass on the
    perturbed tokens and on the control over the matched queries."""
    names = list(report["results"])
    keys = ("perturbed", "perturbed_matched", "control")
    header = "| layer | " + " | ".join(f"{n} m_q | {n} matched: perturbed | {n} matched: control" for n in names)
    lines = [header + " |", "|" + "---|" * (1 + len(keys) * len(names))]
    for i, entry in enumerate(report["results"][names[0]]["layers"]):
        cells = [_cell(report["results"][n]["layers"][i][key]["mean"]) for n in names for key in keys]
        lines.append(f"| {entry['layer']} | " + " | ".join(cells) + " |")
    rows = report["rows"]
    lines.append(f"\n{rows['measured']} counterfactual rows measured, {rows['matched']} with matched queries "
                 f"({rows['in_split']} rows in the split, {rows['originals']} originals, skipped: "
                 f"{rows['skipped'] or 'none'})")
    return "\n".join(lines)
