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

__all__ = ["run_attention_report", "measure_examples", "summarize", "format_summary", "CONTROL_DESCRIPTION"]

REPORT_FILE = "attention_report.json"
PLOT_FILE = "attention_by_layer.png"
CONTROL_DESCRIPTION = (
    "query q-s on the tokens P-s, for each query q on the perturbed tokens P; s is the smallest shift that puts "
    "every token of P-s on an unperturbed token (same number of keys, each at the same distance from its query)"
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_model(config: AttentionReportConfig):
    """``(model, tokenizer)``: the base model on SDPA switched to the concept-aware attention, with the adapter
    when one is given, in eval mode on the configured device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from procure_trl.training.attention import enable_concept_attention

    for what, name in (("model", config.model), ("adapter", config.adapter)):
        if name and name.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(name)):
            raise FileNotFoundError(f"{what} folder {name!r} does not exist; pass a Hub id or a folder that "
                                    f"holds the {what} (its config and weights)")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            config.model, dtype=config.dtype, attn_implementation="sdpa", trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise ValueError(f"model {config.model!r} could not be loaded: {_first_line(err)}") from err
    enable_concept_attention(model)  # the loss's attention function; ValueError when the model cannot use it
    if config.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, config.adapter)
        except (OSError, ValueError) as err:
            raise ValueError(f"adapter {config.adapter!r} could not be loaded on {config.model!r}: "
                             f"{_first_line(err)}") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def measure_examples(model, examples: Sequence[AttentionExample], layers: Sequence[int], *, pad_token_id: int,
                     batch_size: int = 8) -> dict[str, torch.Tensor]:
    """``{"perturbed": (layers, rows), "control": (layers, rows)}``, rows in the order of ``examples``.

    Rows are batched by length (less padding); results are put back in order.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    out = {key: torch.zeros(len(layers), len(examples)) for key in ("perturbed", "control")}
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate_left([examples[i] for i in chosen], pad_token_id).items()}
        for key, values in measure_batch(model, batch, layers).items():
            out[key][:, chosen] = values.float().cpu()
    return out


def _mean_sem(values: torch.Tensor) -> dict[str, float]:
    n = values.numel()
    sem = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0
    return {"mean": float(values.mean()), "sem": sem}


def summarize(values: dict[str, torch.Tensor], layers: Sequence[int], concepts: Sequence[str | None]) -> dict[str, Any]:
    """Per-layer mean and standard error over rows, the mean over layers, and per-concept per-layer means."""
    by_concept: dict[str, Any] = {}
    for concept in sorted({c or "unknown" for c in concepts}):
        columns = [i for i, c in enumerate(concepts) if (c or "unknown") == concept]
        by_concept[concept] = {"rows": len(columns)} | {
            key: [float(v) for v in values[key][:, columns].mean(dim=1)] for key in ("perturbed", "control")
        }
    return {
        "layers": [
            {"layer": layer} | {key: _mean_sem(values[key][i]) for key in ("perturbed", "control")}
            for i, layer in enumerate(layers)
        ],
        "mean_over_layers": {key: float(values[key].mean()) for key in ("perturbed", "control")},
        "by_concept": by_concept,
    }


def _per_row(examples: Sequence[AttentionExample], measured: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    rows = []
    for j, example in enumerate(examples):
        entry: dict[str, Any] = {
            "row": example.row, "task_id": example.task_id, "concept": example.concept, "shift": example.shift,
            "queries": sum(example.query_mask), "perturbed_tokens": sum(example.perturbation_mask),
        }
        for name, values in measured.items():
            entry[name] = {key: [float(v) for v in values[key][:, j]] for key in ("perturbed", "control")}
        rows.append(entry)
    return rows


def _adapter_off(model):
    """Context in which a PEFT model runs as its base model (a no-op context for a plain model)."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def run_attention_report(config: AttentionReportConfig) -> dict[str, Any]:
    """Measure the base model (and the adapter when given) on the dataset split; write the JSON and the plot.

    Raises:
        ValueError: the model, adapter or dataset cannot be used (the message names it), or the split has no
            counterfactual row that can be measured.
        FileNotFoundError: the dataset is a local path that does not exist.
    """
    from procure_trl.counterfactual_dataset import load_dataset_split

    dataset = load_dataset_split(config.dataset, config.dataset_config, config.split)
    model, tokenizer = load_model(config)
    prepared = prepare_examples(dataset, dataset.column_names, tokenizer, max_length=config.max_length,
                                limit=config.limit, dataset_name=config.split)
    if not prepared.examples:
        raise ValueError(
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
    os.makedirs(config.output_dir, exist_ok=True)
    json_path, png_path = os.path.join(config.output_dir, REPORT_FILE), os.path.join(config.output_dir, PLOT_FILE)
    results = {name: summarize(values, layers, concepts) for name, values in measured.items()}
    report = {
        "model": config.model, "adapter": config.adapter, "dataset": config.dataset,
        "dataset_config": config.dataset_config, "split": config.split, "max_length": config.max_length,
        "rows": {"in_split": prepared.rows, "originals": prepared.originals,
                 "counterfactual": len(prepared.examples) + sum(prepared.skipped.values()),
                 "measured": len(prepared.examples), "skipped": prepared.skipped},
        "queries": "completion tokens at or after the first perturbed completion token (the attention term's queries)",
        "control": CONTROL_DESCRIPTION,
        "results": results,
        "per_row": _per_row(prepared.examples, measured),
        "files": {"report": json_path, "plot": png_path},
    }
    plot_attention_by_layer(results, png_path, title=f"{os.path.basename(config.model.rstrip('/'))}: attention "
                                                     f"on perturbed tokens ({len(prepared.examples)} rows)")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return report


def format_summary(report: dict[str, Any]) -> str:
    """A Markdown table: per layer, the mean mass on perturbed tokens and on the control, per model."""
    names = list(report["results"])
    header = "| layer | " + " | ".join(f"{n} perturbed | {n} control" for n in names) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(names))]
    for i, entry in enumerate(report["results"][names[0]]["layers"]):
        cells = []
        for name in names:
            layer = report["results"][name]["layers"][i]
            cells += [f"{layer['perturbed']['mean']:.4f}", f"{layer['control']['mean']:.4f}"]
        lines.append(f"| {entry['layer']} | " + " | ".join(cells) + " |")
    rows = report["rows"]
    lines.append(f"\n{rows['measured']} counterfactual rows measured ({rows['in_split']} rows in the split, "
                 f"{rows['originals']} originals, skipped: {rows['skipped'] or 'none'})")
    return "\n".join(lines)
