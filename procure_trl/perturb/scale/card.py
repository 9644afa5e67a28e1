"""Counts of an output dataset, read back from its Parquet files, and the dataset card (README.md) that states them.

The counts come from the written files (``concept``, ``tests_run`` and the originals' ``outcomes``), so
both engines get the same card from the same rows, and reading them needs one column batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from procure_trl.concepts import ORIGINAL, concept_names_in
from procure_trl.statuses import NOT_APPLICABLE, REJECTED

_STATS_COLUMNS = ("concept", "tests_run", "outcomes")


@dataclass
class ConceptCounts:
    """Per concept: counterfactual rows written, how many passed tests, and the programs rejected or not applicable."""

    rows: int = 0
    test_validated: int = 0
    rejected: int = 0
    not_applicable: int = 0


@dataclass
class DatasetCounts:
    """What an output dataset holds: original rows (and how many ran tests) and per-concept counts."""

    originals: int = 0
    originals_tested: int = 0
    concepts: dict[str, ConceptCounts] = field(default_factory=dict)

    @property
    def counterfactuals(self) -> int:
        return sum(c.rows for c in self.concepts.values())


def parquet_files(output_dir: str | Path) -> list[Path]:
    return sorted((Path(output_dir) / "data").glob("*.parquet"))


def count_output(output_dir: str | Path) -> DatasetCounts:
    """Read the counts from the Parquet files under ``output_dir/data``, one column batch at a time."""
    import pyarrow.parquet as pq

    counts = DatasetCounts()
    for path in parquet_files(output_dir):
        for batch in pq.ParquetFile(path).iter_batches(columns=list(_STATS_COLUMNS), batch_size=8192):
            data = batch.to_pydict()
            for concept, tested, outcomes in zip(data["concept"], data["tests_run"], data["outcomes"]):
                if concept == ORIGINAL:
                    counts.originals += 1
                    counts.originals_tested += bool(tested)
                    for outcome in outcomes or ():
                        name, status = outcome.split(":")[:2]
                        entry = counts.concepts.setdefault(name, ConceptCounts())
                        entry.rejected += status == REJECTED
                        entry.not_applicable += status == NOT_APPLICABLE
                    continue
                entry = counts.concepts.setdefault(concept, ConceptCounts())
                entry.rows += 1
                entry.test_validated += bool(tested)
    # The concepts the rows hold (user-defined ones too), built-in ones first.
    counts.concepts = {name: counts.concepts[name] for name in concept_names_in(counts.concepts)}
    return counts


def format_counts_table(counts: DatasetCounts) -> str:
    """A Markdown table: per concept, counterfactual rows, test-validated, static only, rejected, not applicable."""
    lines = ["| concept | counterfactual rows | test-validated | static validation only | rejected | not applicable |",
             "|---|---:|---:|---:|---:|---:|"]
    total = ConceptCounts()
    for name, c in counts.concepts.items():
        if not (c.rows or c.rejected or c.not_applicable):
            continue
        lines.append(f"| {name} | {c.rows} | {c.test_validated} | {c.rows - c.test_validated} | {c.rejected} | "
                     f"{c.not_applicable} |")
        for key in ("rows", "test_validated", "rejected", "not_applicable"):
            setattr(total, key, getattr(total, key) + getattr(c, key))
    lines.append(f"| **total** | {total.rows} | {total.test_validated} | {total.rows - total.test_validated} | "
                 f"{total.rejected} | {total.not_applicable} |")
    return "\n".join(lines)


def write_card(output_dir: str | Path, *, source: str, split: str, fmt_description: str,
               counts: DatasetCounts) -> Path:
    """Write ``output_dir/README.md``: what the rows hold and the counts (``load_dataset`` finds the split in the
    shard names)."""
    text = f"""---
tags:
- procure
- counterfactual
- code
---
# Counterfactual programs for `{source}`

The rows of `{source}` (split `{split}`; {fmt_description}), each followed by its counterfactuals: the
same row with the code of the completion or assistant message changed by one semantics-preserving
perturbation. Rows keep the input's format; added columns:

- `pair_id`: shared by an original row and its counterfactuals;
- `concept`: `{ORIGINAL}` or the perturbation;
- `changed_spans`: `[start, end)` character offsets of the changed code in the completion (or in the
  content of the assistant message `changed_message`, for conversational rows);
- `tests_run`: whether the row's tests ran; on a counterfactual, that it passed them. Rows without tests
  get static validation only (parse, de-duplication, an AST check of the concept's change);
- `outcomes` (original rows): `concept:status[:stage]` of each attempted perturbation.

Original rows: {counts.originals} ({counts.originals_tested} ran their tests). \
Counterfactual rows: {counts.counterfactuals}.

{format_counts_table(counts)}

`rejected` and `not applicable` count code texts (a completion or an assistant message) for which no
counterfactual was kept: `{REJECTED}` when a candidate failed validation, `{NOT_APPLICABLE}` when the concept
had nothing to act on. Train on it with `procure_trl.ConceptAwareSFTTrainer`.
"""
    path = Path(output_dir) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path

