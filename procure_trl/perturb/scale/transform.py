"""The per-batch transform: a batch of dataset rows in, the rows plus their counterfactuals out.

:class:`CounterfactualBatchTransform` is the one function both engines run: ``Dataset.map(batched=True,
num_proc=N)`` on one machine and Ray Data's ``map_batches`` on a cluster. A batch is a dict of columns
(``{"column": [value, ...]}``); the output is a dict of the same columns plus:

* ``pair_id``: shared by an original row and its counterfactuals (a digest of the original row, so the
  same row gets the same id, seed and counterfactuals whichever engine, process or batch handles it);
* ``concept``: ``original`` or the concept of the counterfactual;
* ``changed_spans``: ``[start, end)`` character offsets of the changed code in the code text (the
  completion, or the content of assistant message ``changed_message``);
* ``changed_message`` (conversational formats only): the index of that message, ``-1`` for originals;
* ``tests_run``: whether the row's tests ran (and, on a counterfactual, passed);
* ``outcomes`` (originals only): ``concept:status[:stage]`` per code text and concept, for the card.

Each Python block is perturbed and validated by the engine (:func:`procure_trl.perturb.engine.generate_counterfactuals`)
as a program of its own: statically when the row has no tests, and also with its tests in the executor
when the row has a tests column and exactly one program. Only valid counterfactuals become rows. Each
process owns one executor (started on the first batch with tests) and a fresh validator per batch, so
memory does not grow with the number of batches.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from procure_trl.concepts import ORIGINAL, AnyConcept, Concept
from procure_trl.perturb.scale.formats import (
    CONVERSATIONAL,
    DatasetFormat,
    code_texts,
    python_blocks,
    replace_text,
    tests_text,
)
from procure_trl.statuses import NOT_APPLICABLE, REJECTED, VALID, Stage

#: Columns the transform adds to the input's, in order (``changed_message`` for conversational formats only).
ADDED_COLUMNS = ("pair_id", "concept", "changed_spans", "changed_message", "tests_run", "outcomes")
# validation stages after which the tests have run
_EXECUTED_STAGES = frozenset({Stage.PASSED, Stage.EXECUTION, Stage.ORIGINAL})


def added_columns(fmt: DatasetFormat) -> tuple[str, ...]:
    return tuple(c for c in ADDED_COLUMNS if c != "changed_message" or fmt.kind == CONVERSATIONAL)


def pair_id_of(row: Mapping[str, Any]) -> str:
    """A digest of the row's content: the same row, the same id (and so the same seeds) everywhere."""
    payload = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def _top_level_function(code: str) -> str:
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node.name
    return ""


class CounterfactualBatchTransform:
    """Callable ``batch -> batch`` for ``Dataset.map(batched=True)`` and Ray Data's ``map_batches``.

    Parameters:
        fmt (`DatasetFormat`): where the code is in a row.
        concepts (`Sequence[Concept]`): perturbations to apply, in output order.
        seed (`int`): base seed of the engine.
        timeout (`float`): seconds for one program's tests.
        test_workers (`int`): executor processes of this transform (started on the first batch with tests).
    """

    def __init__(self, fmt: DatasetFormat, concepts: Sequence[Concept] = tuple(Concept), seed: int = 0,
                 timeout: float = 30.0, test_workers: int = 1) -> None:
        self.fmt = fmt
        self.concepts = [Concept.parse(c) for c in concepts]
        self.seed = seed
        self.timeout = timeout
        self.test_workers = test_workers
        self._executor = None

    # pickled into each datasets.map process and each Ray worker without a running executor;
    # the fingerprint datasets caches the map under is computed from this state too
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_executor": None}

    def close(self) -> None:
        """Stop this process's executor, if one was started."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def __del__(self) -> None:
        self.close()

    def _get_executor(self):
        if self._executor is None:
            from procure_trl.execution import ExecutionLimits, Executor

            self._executor = Executor(num_workers=self.test_workers, limits=ExecutionLimits(timeout=self.timeout))
        return self._executor

    # -- the transform ---------------------------------------------------------------------------------
    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        columns = list(batch)
        rows = [dict(zip(columns, values)) for values in zip(*(batch[c] for c in columns))]
        out_columns = columns + list(added_columns(self.fmt))
        out: dict[str, list] = {c: [] for c in out_columns}
        for row in self.transform_rows(rows):
            for c in out_columns:
                out[c].append(row[c])
        return out

    def transform_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row followed by its valid counterfactuals (rows with the added columns)."""
        from procure_trl.problems import Problem

        ids = [pair_id_of(row) for row in rows]
        unique: dict[str, Mapping[str, Any]] = {}
        for pair_id, row in zip(ids, rows):
            unique.setdefault(pair_id, row)  # a repeated row is perturbed once, the same way
        tested: list[Problem] = []
        static: list[Problem] = []
        tested_rows: set[str] = set()
        programs: dict[str, list[tuple[int, str, list[tuple[int, int, str]]]]] = {}
        for pair_id, row in unique.items():
            texts = []
            for message_index, text in code_texts(row, self.fmt):
                blocks = [(s, e, f"{pair_id}:{message_index}:{b}") for b, (s, e) in enumerate(python_blocks(text))]
                if blocks:
                    texts.append((message_index, text, blocks))
            programs[pair_id] = texts
            tests = tests_text(row, self.fmt)
            # tests exercise one program: a row with several code blocks is validated statically
            one_program = len(texts) == 1 and len(texts[0][2]) == 1
            for _, text, blocks in texts:
                for start, end, task_id in blocks:
                    code = text[start:end]
                    problem = Problem(task_id, "", code, tests if one_program else "", _top_level_function(code))
                    (tested if tests.strip() and one_program else static).append(problem)
            if tests.strip() and one_program:
                tested_rows.add(pair_id)
        records = {r.key: r for r in self._run_engine(static, execute=False) + self._run_engine(tested, execute=True)}
        cache = {pair_id: self._row_outputs(unique[pair_id], pair_id, programs[pair_id], records,
                                            pair_id in tested_rows) for pair_id in unique}
        return [out for pair_id in ids for out in cache[pair_id]]

    def _run_engine(self, problems: list, execute: bool) -> list:
        if not problems:
            return []
        from procure_trl.perturb.engine import GenerationConfig, generate_counterfactuals
        from procure_trl.validation import ValidationConfig, Validator

        config = GenerationConfig(concepts=self.concepts, seed=self.seed, timeout=self.timeout, progress=False)
        # a fresh validator per batch: its de-duplication memory is per program, so it must not outlive the batch
        validator = Validator(ValidationConfig(timeout=self.timeout, execute=execute),
                              executor=self._get_executor() if execute else None)
        return generate_counterfactuals(problems, config, validator=validator)

    def _row_outputs(self, row, pair_id, texts, records, tested: bool) -> list[dict[str, Any]]:
        conversational = self.fmt.kind == CONVERSATIONAL
        extra = {"pair_id": pair_id, "changed_spans": []}
        if conversational:
            extra["changed_message"] = -1
        original = {**row, **extra, "concept": ORIGINAL, "tests_run": False, "outcomes": []}
        counterfactuals = []
        for message_index, text, blocks in texts:
            for concept in self.concepts:
                block_records = [records[(task_id, concept.value)] for _, _, task_id in blocks]
                original["tests_run"] |= tested and any(r.stage in _EXECUTED_STAGES for r in block_records)
                original["outcomes"].append(_outcome(concept, block_records))
                changed = [(s, e, r) for (s, e, _), r in zip(blocks, block_records) if r.status == VALID]
                if not changed:
                    continue
                new_text, spans = _apply_blocks(text, changed)
                counterfactual = replace_text(row, self.fmt, message_index, new_text)
                # a valid counterfactual of a tested row passed its tests
                counterfactual.update(extra, concept=concept.value, changed_spans=spans, outcomes=[], tests_run=tested)
                if conversational:
                    counterfactual["changed_message"] = message_index
                counterfactuals.append(counterfactual)
        return [original, *counterfactuals]


def _outcome(concept: AnyConcept, block_records) -> str:
    if any(r.status == VALID for r in block_records):
        return f"{concept.value}:{VALID}"
    rejected = [r for r in block_records if r.status == REJECTED]
    if rejected:
        return f"{concept.value}:{REJECTED}:{rejected[0].stage}"
    return f"{concept.value}:{NOT_APPLICABLE}"


def _apply_blocks(text: str, changed) -> tuple[str, list[list[int]]]:
    """``text`` with each changed block ``(start, end, record)`` replaced by ``record.code``, and the record's
    spans moved to offsets into the new text."""
    pieces: list[str] = []
    spans: list[list[int]] = []
    cursor, shift = 0, 0
    for start, end, record in changed:
        pieces.append(text[cursor:start])
        base = start + shift
        spans.extend([base + s, base + e] for s, e in record.changed_spans)
        pieces.append(record.code)
        shift += len(record.code) - (end - start)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), spans
