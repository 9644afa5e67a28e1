"""The ``procure mutate`` run: valid counterfactual rows -> near-miss mutant pairs -> the tests -> mutant rows.

For each valid counterfactual row and each :class:`~procure_trl.perturb.mutants.MutationKind` of its concept,
:func:`~procure_trl.perturb.mutants.mutate_pair` mutates the original and the counterfactual alike; both mutants
then run the problem's tests in the sandboxed executor. The output holds two lines per (row, kind), one per side
(``mutant_of``), as :class:`~procure_trl.perturb.records.CounterfactualRecord` lines written by the same
:class:`~procure_trl.perturb.records.RecordWriter` as ``procure perturb`` (so ``--resume`` works the same way):

* ``valid``, stage ``killed``: the mutant fails a test: a kept mutant, a bug;
* ``rejected``, stage ``survived``: it passes every test: dropped, never called a bug;
* ``rejected``, stage ``execution``: its tests timed out: undecided, dropped;
* ``not_applicable``, stage ``perturbation``: the kind has no site in this pair (both sides, one reason).

A pair is *killed* when both of its mutants are. :func:`format_mutation_table` counts pairs per concept and kind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from procure_trl.concepts import all_concepts
from procure_trl.errors import UserError
from procure_trl.perturb.mutants import MutationKind, mutate_pair, mutation_kinds
from procure_trl.perturb.records import CounterfactualRecord, RecordWriter
from procure_trl.problems import Problem
from procure_trl.statuses import NOT_APPLICABLE, REJECTED, VALID, Stage

__all__ = ["MutationConfig", "SIDES", "format_mutation_table", "generate_mutants", "mutants_to_jsonl",
           "mutation_summary", "killed_pairs"]

#: The two programs a pair's mutants come from, in output order.
SIDES = ("original", "counterfactual")


def _kinds(text: str) -> list[MutationKind]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    try:
        return [MutationKind(n) for n in names]
    except ValueError:
        raise UserError(
            f"unknown mutation kind in {text!r}; use: {', '.join(k.value for k in MutationKind)}"
        ) from None


@dataclass
class MutationConfig:
    r"""Settings of ``procure mutate``.

    Parameters:
        kinds (`Sequence[MutationKind]`, *optional*):
            Mutation kinds to try (default: every kind that fits each row's concept: its own operator, then
            ``comparison``, ``off_by_one``, ``boolean``).
        seed (`int`, defaults to `0`):
            Picks the site of each (row, kind) among the possible ones; the same seed gives the same output.
        timeout (`float`, defaults to `1.0`):
            Seconds allowed for one mutant's tests. A mutant whose tests time out is dropped as undecided (a slow
            mutant is not proven wrong), so a short limit costs kept mutants, never correctness; it bounds the time
            mutants that loop forever take (the tests of every HumanEval and MBPP reference but one take well
            under a second).
        num_workers (`int`, defaults to `min(4, CPU count)`):
            Processes that run the tests.
        progress (`bool`, defaults to `True`):
            Show a progress bar.
    """

    kinds: Sequence[MutationKind] | None = field(
        default=None, metadata={"help": "comma-separated mutation kinds to try", "parse": _kinds, "metavar": "a,b,...",
                                "default_text": "the row concept's own kind, then comparison,off_by_one,boolean"})
    seed: int = field(default=0, metadata={"help": "picks the site of each (row, kind) among the possible ones"})
    timeout: float = field(default=1.0, metadata={
        "help": "seconds allowed for one mutant's tests; a mutant that times out is dropped as undecided"})
    num_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1), metadata={
        "help": "processes that run the tests", "default_text": "min(4, CPU count)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar", "off_help": "hide the progress bar"})

    def __post_init__(self) -> None:
        if self.kinds is not None:
            self.kinds = tuple(MutationKind(k) for k in self.kinds)
        if not self.timeout > 0:
            raise UserError(f"timeout (--timeout) must be > 0 seconds, got {self.timeout}")
        if self.num_workers < 1:
            raise UserError(f"num_workers (--num-workers) must be >= 1, got {self.num_workers}")


def mutation_seed(seed: int, row: CounterfactualRecord, kind: MutationKind) -> int:
    """A stable seed for one (row, kind), unlike Python's salted ``hash``."""
    key = json.dumps([seed, list(row.key), kind.value])
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 1


def row_kinds(row: CounterfactualRecord, config: MutationConfig) -> list[MutationKind]:
    fitting = mutation_kinds(row.concept)
    return [k for k in fitting if config.kinds is None or k in config.kinds]


def _candidates(rows: Sequence[CounterfactualRecord], config: MutationConfig) -> list[CounterfactualRecord]:
    """Every line of ``rows`` before execution: mutants carry stage ``killed`` until their tests say otherwise."""
    out = []
    for row in rows:
        assert row.code is not None  # counterfactual_rows passes rows with code only
        for kind in row_kinds(row, config):
            pair = mutate_pair(row.original, row.code, row.concept, row.changed_spans, kind,
                               seed=mutation_seed(config.seed, row, kind))
            for side in SIDES:
                common: dict[str, Any]  # the record fields both sides share, of several types
                common = dict(task_id=row.task_id, concept=row.concept, original=row.original, generator=row.generator,
                              sites=row.sites, variant=row.variant, mutation=kind.value, mutant_of=side,
                              counterfactual=row.code)
                mutant = getattr(pair, side)
                if mutant is None:
                    out.append(CounterfactualRecord(status=NOT_APPLICABLE, reason=pair.reason,
                                                    stage=Stage.PERTURBATION, **common))
                else:
                    out.append(CounterfactualRecord(status=VALID, reason="", code=mutant.code,
                                                    changed_spans=mutant.changed_spans, stage=Stage.KILLED, **common))
    return out


def _verdict(record: CounterfactualRecord, result) -> CounterfactualRecord:
    from dataclasses import replace

    if result.passed:
        return replace(record, status=REJECTED, stage=Stage.SURVIVED,
                       reason="passes every test of the problem: not a bug (dropped)")
    if str(result.status) == "timed_out":
        return replace(record, status=REJECTED, stage=Stage.EXECUTION,
                       reason="its tests timed out: undecided (dropped, not called a bug)")
    message = (result.message or "").strip().splitlines()
    return replace(record, reason=f"fails the tests: {result.error_type or 'Error'}"
                                  + (f": {message[0][:200]}" if message else ""))


def _job_key(line: CounterfactualRecord, problems: Mapping[str, Problem]) -> tuple[str, str]:
    """The ``(program, tests)`` a valid mutant line is run with (:func:`_candidates` gives each its code)."""
    if line.code is None:
        raise ValueError(f"{line.task_id}: a valid mutant line without code")
    return line.code, problems[line.task_id].tests


def _decide(rows: Sequence[CounterfactualRecord], problems: Mapping[str, Problem], config: MutationConfig,
            executor) -> list[CounterfactualRecord]:
    """The lines of ``rows``: mutate, then run every distinct mutant's tests in one executor call."""
    from procure_trl.execution import ExecutionJob

    lines = _candidates(rows, config)
    jobs: dict[tuple[str, str], int] = {}
    for line in lines:
        if line.status == VALID:
            jobs.setdefault(_job_key(line, problems), len(jobs))
    results = executor.run([ExecutionJob(program, tests) for program, tests in jobs]) if jobs else []
    return [_verdict(line, results[jobs[_job_key(line, problems)]]) if line.status == VALID else line
            for line in lines]


def counterfactual_rows(records: Iterable[CounterfactualRecord], problems: Mapping[str, Problem],
                        source: str) -> list[CounterfactualRecord]:
    """The valid counterfactual rows of ``records`` (mutant rows refused), each of a problem in ``problems``."""
    records = list(records)
    if any(r.mutation is not None for r in records):
        raise UserError(f"{source} holds mutant rows (it was written by `procure mutate`); give the output of "
                        "`procure perturb`")
    rows = [r for r in records if r.status == VALID and r.code is not None]
    if not rows:
        raise UserError(f"{source}: no 'valid' counterfactual row to mutate; run `procure perturb` first")
    unknown = sorted({r.task_id for r in rows if r.task_id not in problems})
    if unknown:
        raise UserError(f"{source}: no tests for task(s) {', '.join(unknown[:5])}: pass --problems FILE.jsonl with "
                        "those problems (HumanEval and MBPP tasks are found by their ids)")
    return rows


def generate_mutants(rows: Sequence[CounterfactualRecord], problems: Mapping[str, Problem],
                     config: MutationConfig | None = None, executor=None) -> list[CounterfactualRecord]:
    """The mutant lines of the valid counterfactual ``rows`` (tests from ``problems`` by task id)."""
    out: list[CounterfactualRecord] = []
    _run(rows, problems, config or MutationConfig(), executor, out.extend)
    return out


def _run(rows: Sequence[CounterfactualRecord], problems: Mapping[str, Problem], config: MutationConfig, executor,
         sink: Callable[[list[CounterfactualRecord]], None]) -> None:
    from tqdm.auto import tqdm

    from procure_trl.execution import ExecutionLimits, Executor

    own = executor is None
    if own:
        executor = Executor(num_workers=config.num_workers, limits=ExecutionLimits(timeout=config.timeout))
    by_task: dict[str, list[CounterfactualRecord]] = {}
    for row in rows:
        by_task.setdefault(row.task_id, []).append(row)
    tasks = list(by_task)
    size = 64  # problems per batch: enough jobs to keep the workers busy, little lost to an interrupt
    try:
        with tqdm(total=len(tasks), desc="mutating", unit="problem", disable=not config.progress) as bar:
            for start in range(0, len(tasks), size):
                batch = [row for task in tasks[start:start + size] for row in by_task[task]]
                sink(_decide(batch, problems, config, executor))
                bar.update(len(tasks[start:start + size]))
    finally:
        if own:
            executor.close()


def _expected_lines(rows: Sequence[CounterfactualRecord], config: MutationConfig) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.task_id] = counts.get(row.task_id, 0) + len(SIDES) * len(row_kinds(row, config))
    return counts


def mutants_to_jsonl(rows: Sequence[CounterfactualRecord], problems: Mapping[str, Problem], path: str | os.PathLike,
                     config: MutationConfig | None = None, *, resume: bool = False, overwrite: bool = False,
                     inputs: Mapping | None = None) -> list[CounterfactualRecord]:
    """:func:`generate_mutants`, appending each batch's lines to ``path``; ``resume`` keeps the problems done.

    The finished file is in the order of ``rows`` whether the run was interrupted and resumed or not.
    """
    config = config or MutationConfig()
    order = list(dict.fromkeys(r.key[:2] for r in rows))
    expected = _expected_lines(rows, config)
    settings = {**(inputs or {}), "seed": config.seed,
                "kinds": [k.value for k in config.kinds] if config.kinds else None}
    with RecordWriter(path, resume=resume, overwrite=overwrite, settings=settings) as writer:
        done = writer.keep_whole_problems(order)
        have: dict[str, int] = {}
        for record in writer.existing:
            have[record.task_id] = have.get(record.task_id, 0) + 1
        complete = {task for task in done if have.get(task) == expected.get(task)}  # a torn batch is redone whole
        if complete != done:
            writer.retain([r for r in writer.existing if r.task_id in complete])
        _run([r for r in rows if r.task_id not in complete], problems, config, None, writer.write_many)
        return writer.finish(order)


# ------------------------------------------------------------------------------------------------- summary

_COUNTS = ("pairs", "killed", "survived", "timed_out", "not_applicable")


def _pairs(records: Iterable[CounterfactualRecord]) -> dict[tuple, list[CounterfactualRecord]]:
    pairs: dict[tuple, list[CounterfactualRecord]] = {}
    for record in records:
        if record.mutation is not None:
            pairs.setdefault(record.key[:-1], []).append(record)
    return pairs


def _pair_outcome(sides: Sequence[CounterfactualRecord]) -> str:
    if any(s.status == NOT_APPLICABLE for s in sides):
        return "not_applicable"
    if len(sides) == len(SIDES) and all(s.status == VALID for s in sides):
        return "killed"
    if any(s.stage == Stage.SURVIVED for s in sides):
        return "survived"
    return "timed_out"


def killed_pairs(records: Iterable[CounterfactualRecord]) -> list[tuple[CounterfactualRecord, CounterfactualRecord]]:
    """``(mutant of the original, mutant of the counterfactual)`` of every pair whose two mutants are both killed."""
    out = []
    for sides in _pairs(records).values():
        if _pair_outcome(sides) == "killed":
            by_side = {s.mutant_of: s for s in sides}
            out.append((by_side["original"], by_side["counterfactual"]))
    return out


def mutation_summary(records: Iterable[CounterfactualRecord]) -> dict[tuple[str, str], dict[str, int]]:
    """Per ``(concept, kind)``: ``pairs``, and how many were ``killed`` (both mutants fail a test), ``survived`` (a
    mutant passes every test), ``timed_out`` (undecided) or ``not_applicable``; concepts in registry order."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for sides in _pairs(records).values():
        kind = sides[0].mutation
        assert kind is not None  # _pairs keeps mutant rows only
        entry = counts.setdefault((sides[0].concept.value, kind), dict.fromkeys(_COUNTS, 0))
        entry["pairs"] += 1
        entry[_pair_outcome(sides)] += 1
    concepts = [c.value for c in all_concepts()]
    kinds = [k.value for k in MutationKind]
    rank = lambda key: (concepts.index(key[0]) if key[0] in concepts else len(concepts), key[0],  # noqa: E731
                        kinds.index(key[1]) if key[1] in kinds else len(kinds), key[1])
    return {key: counts[key] for key in sorted(counts, key=rank)}


def format_mutation_table(records: Iterable[CounterfactualRecord]) -> str:
    """Pairs per concept and kind: killed, survived, timed out, not applicable, and the kill rate of applicable
    pairs."""
    from procure_trl.perturb.engine import format_totals_table

    summary = mutation_summary(records)
    totals = {key: sum(c[key] for c in summary.values()) for key in _COUNTS}
    header = ("concept", "mutation", "pairs", "killed", "survived", "timed out", "not applicable", "killed/applicable")

    def cells(concept: str, kind: str, c: Mapping[str, int]) -> tuple[str, ...]:
        applicable = c["pairs"] - c["not_applicable"]
        rate = f"{100.0 * c['killed'] / applicable:.1f}%" if applicable else "-"
        return (concept, kind, *(str(c[key]) for key in _COUNTS), rate)

    body = [cells(concept, kind, c) for (concept, kind), c in summary.items()]
    return format_totals_table(header, body, cells("total", "", totals))
