"""The rule-engine run: problems -> rule-based perturbations -> validation -> output records.

One :class:`~procure_trl.records.CounterfactualRecord` per (problem, concept), in input order then
concept order, so the same inputs and seed give byte-identical output. :func:`format_summary_table`
prints the per-concept counts; the LLM generator (:mod:`procure_trl.llm`) writes the same records and
reuses the table and the validator.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from procure_trl.concepts import Concept
from procure_trl.problems import InvalidProblem, Problem
from procure_trl.records import CounterfactualRecord
from procure_trl.statuses import NOT_APPLICABLE, REJECTED, VALID, Stage
from procure_trl.validation.pipeline import ValidationConfig
from procure_trl.errors import UserError


def default_num_workers() -> int:
    """Test-running processes when none is asked for: up to 4, never more than the CPUs."""
    return min(4, os.cpu_count() or 1)


def _concepts(text: str) -> list[Concept]:
    concepts = Concept.parse_list(text)
    if not concepts:
        raise ValueError("no concept given; pass a comma-separated list such as name_random,if_else_flip")
    return concepts


@dataclass
class GenerationConfig:
    r"""Settings of :func:`generate_counterfactuals` (the rule engine's options of ``procure perturb``).

    Parameters:
        concepts (`Sequence[Concept]`, defaults to all five concepts):
            Concepts to apply to every problem, in output order.
        seed (`int`, defaults to `0`):
            Base seed; each (task, concept) gets its own seed derived from it (:func:`derive_seed`).
        validate (`bool`, defaults to `True`):
            Run the validation pipeline; `False` keeps every produced program as `valid` (unchecked).
        num_workers (`int`, defaults to `min(4, CPU count)`):
            Processes that run the tests.
        timeout (`float`, defaults to `ValidationConfig.timeout`):
            Seconds allowed for one program's tests (see :class:`procure_trl.validation.ValidationConfig`).
        progress (`bool`, defaults to `True`):
            Show progress bars.
        sites (`int`, defaults to `1`):
            Places changed at once by ``if_else_flip``, ``independent_swap`` and ``def_use_break``;
            a program with fewer such places gets a ``not_applicable`` row. Every applied row records
            its ``sites``.
        variants (`int`, defaults to `1`):
            Up to this many distinct counterfactuals per (problem, concept): seeds are drawn until
            ``variants`` different programs came out (at most ``VARIANT_ATTEMPTS * variants`` draws),
            and each is validated. Rows carry their ``variant`` number when ``variants > 1``.
    """

    concepts: Sequence[Concept] = field(
        default=tuple(Concept),
        metadata={"help": "comma-separated concepts to apply", "parse": _concepts, "metavar": "a,b,...",
                  "default_text": "all five: " + ",".join(c.value for c in Concept)},
    )
    seed: int = field(
        default=0, metadata={"help": "base seed; each (task, concept) derives its own from it"}
    )
    validate: bool = field(
        default=True,
        metadata={"help": "validate every candidate (dedup, parse, concept check, tests); off: every produced "
                          "program is written as 'valid' (unchecked)"},
    )
    num_workers: int = field(
        default_factory=default_num_workers,
        metadata={"help": "processes that run the tests", "flags": "--workers", "default_text": "min(4, CPU count)"},
    )
    timeout: float = field(
        default=ValidationConfig.timeout,
        metadata={"help": "seconds allowed for one program's tests (generous, so that slow reference "
                          "solutions give the same verdict on a loaded machine)"},
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    sites: int = field(
        default=1,
        metadata={"help": "places changed at once by if_else_flip, independent_swap and def_use_break (flip K "
                          "ifs, swap K pairs, split K definitions); programs with fewer get not_applicable. The "
                          "renaming concepts rename every renameable name whatever K"},
    )
    variants: int = field(
        default=1,
        metadata={"help": "up to N distinct counterfactuals per (problem, concept), each from its own seed and "
                          "validated; rows then carry a 'variant' number"},
    )

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise UserError(f"num_workers (--workers) must be >= 1, got {self.num_workers}")
        if self.sites < 1:
            raise UserError(f"sites (--sites) must be >= 1, got {self.sites}")
        if self.variants < 1:
            raise UserError(f"variants (--variants) must be >= 1, got {self.variants}")
        if not self.timeout > 0:
            raise UserError(f"timeout (--timeout) must be > 0 seconds, got {self.timeout}")


#: draws per wanted variant before giving up on finding more distinct counterfactuals
VARIANT_ATTEMPTS = 8


def derive_seed(seed: int, task_id: str, concept: Concept | str, draw: int = 0) -> int:
    """A stable 63-bit seed for one (task, concept) and draw: the same everywhere, unlike Python's salted
    ``hash``. Draw 0 is the seed of a one-variant run."""
    key = f"{seed}\x00{task_id}\x00{Concept.parse(concept).value}" + (f"\x00{draw}" if draw else "")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def perturb_variants(source: str, task_id: str, concept: Concept, config: "GenerationConfig",
                     protected: Sequence[str] = ()) -> list:
    """Up to ``config.variants`` results of ``concept`` on ``source`` with distinct programs, from draws
    0, 1, ... (:func:`derive_seed`); ``[result]`` holding the reason when the first draw does not apply.
    Raises what :func:`procure_trl.perturbations.perturb` raises."""
    from procure_trl.perturbations import perturb

    results, seen = [], set()
    draws = 1 if config.variants == 1 else VARIANT_ATTEMPTS * config.variants
    for draw in range(draws):
        result = perturb(source, concept, seed=derive_seed(config.seed, task_id, concept, draw),
                         protected_names=protected, sites=config.sites)
        if not result.applied:
            if draw == 0:
                return [result]
            continue
        if result.code in seen:
            continue  # the same counterfactual again: not a new variant
        seen.add(result.code)
        results.append(result)
        if len(results) == config.variants:
            break
    return results


def protected_names(problem: Problem) -> tuple[str, ...]:
    """Names a perturbation must keep: the entry point and every top-level name of the program the tests use
    (every top-level name when the problem has no tests)."""
    names = {problem.entry_point}
    try:
        program, tests = ast.parse(problem.program), ast.parse(problem.tests)
    except (SyntaxError, ValueError):
        return tuple(sorted(names))
    top_level: set[str] = set()
    for node in program.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top_level.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            top_level.update(a.asname or a.name.split(".")[0] for a in node.names)
        else:
            top_level.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    if not problem.tests.strip():
        # no tests to say which names callers use: any top-level name may be (a prompt may name it)
        return tuple(sorted(names | top_level))
    used = {n.id for n in ast.walk(tests) if isinstance(n, ast.Name)}
    return tuple(sorted(names | (top_level & used)))


def invalid_records(row: InvalidProblem, concepts: Sequence[Concept]) -> list[CounterfactualRecord]:
    """The ``rejected`` records (stage ``input``) that report a bad input row once per concept."""
    task_id = row.task_id or row.where
    reason = f"invalid input row: {row.reason}"
    return [CounterfactualRecord(task_id, c.value, REJECTED, reason, row.program or row.where, stage=Stage.INPUT) for c in concepts]


def generate_counterfactuals(
    problems: Sequence[Problem | InvalidProblem],
    config: GenerationConfig | None = None,
    validator=None,
) -> list[CounterfactualRecord]:
    """Apply every concept of ``config`` to every problem with the rule-based perturbations; validate.

    Invalid input rows and programs that do not parse become ``rejected`` records naming the row and the
    fix; one bad row never stops the batch. ``validator`` (a :class:`procure_trl.validation.Validator`)
    may be shared; by default one is created with ``config``'s workers and timeout.
    """
    from tqdm.auto import tqdm

    from procure_trl.perturbations import InvalidProgramError
    from procure_trl.validation import Candidate, ValidationConfig, Validator

    config = config or GenerationConfig()
    concepts = [Concept.parse(c) for c in config.concepts]
    slots: list[CounterfactualRecord | None] = []
    candidates: list[Candidate] = []
    candidate_slots: list[int] = []
    for problem in tqdm(problems, desc="perturbing", unit="problem", disable=not config.progress):
        if isinstance(problem, InvalidProblem):
            slots.extend(invalid_records(problem, concepts))
            continue
        keep = protected_names(problem)
        for concept in concepts:
            original = problem.program
            try:
                results = perturb_variants(original, problem.task_id, concept, config, keep)
            except InvalidProgramError as err:
                slots.append(CounterfactualRecord(problem.task_id, concept.value, REJECTED,
                                        f"invalid input: {err} (task {problem.task_id}: fix its prompt/solution)",
                                        original, stage=Stage.INPUT))
                continue
            except Exception as err:  # a bug in one perturbation must not cost the rest of the batch
                slots.append(CounterfactualRecord(problem.task_id, concept.value, REJECTED,
                                        f"the {concept} perturbation crashed: {type(err).__name__}: {err}",
                                        original, stage=Stage.PERTURBATION))
                continue
            if not results[0].applied:
                slots.append(CounterfactualRecord(problem.task_id, concept.value, NOT_APPLICABLE, results[0].reason,
                                                  original, stage=Stage.PERTURBATION))
                continue
            for number, result in enumerate(results):
                spans = tuple((int(s), int(e)) for s, e in result.changed_spans)
                slots.append(CounterfactualRecord(problem.task_id, concept.value, VALID, "", original, result.code, spans,
                                                  stage=Stage.UNVALIDATED, sites=result.sites,
                                                  variant=number if config.variants > 1 else None))
                candidates.append(Candidate(problem, concept, result.code, spans, sites=result.sites))
                candidate_slots.append(len(slots) - 1)
    if config.validate and candidates:
        own = validator is None
        validator = validator or Validator(ValidationConfig(timeout=config.timeout, num_workers=config.num_workers,
                                                            progress=config.progress))
        try:
            verdicts = validator.validate(candidates)
        finally:
            if own:
                validator.close()
        for slot, verdict in zip(candidate_slots, verdicts):
            record = slots[slot]
            slots[slot] = replace(record, status=verdict.status, reason=verdict.reason, stage=verdict.stage)
    elif not config.validate:
        for slot in candidate_slots:
            record = slots[slot]
            slots[slot] = replace(record, reason="not validated (--no-validate)")
    return [r for r in slots if r is not None]


def summarize(records: Iterable[CounterfactualRecord]) -> dict[str, dict[str, int]]:
    """Per concept: ``problems``, ``applicable`` (a program was produced or the row was bad), ``valid``,
    ``rejected``, ``not_applicable``; concepts in registry order, then unknown ones."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        entry = counts.setdefault(record.concept.value, dict(problems=0, applicable=0, valid=0, rejected=0,
                                                            not_applicable=0))
        entry["problems"] += 1
        status = record.status
        if status in entry:
            entry[status] += 1
        if status != NOT_APPLICABLE:
            entry["applicable"] += 1
    order = [c.value for c in Concept if c.value in counts] + sorted(set(counts) - {c.value for c in Concept})
    return {name: counts[name] for name in order}


def format_summary_table(rows: Iterable[CounterfactualRecord]) -> str:
    """A plain-text table of per-concept counts (applicable / valid / rejected / not applicable) and totals."""
    summary = summarize(rows)
    header = ("concept", "problems", "applicable", "valid", "rejected", "not applicable", "valid/applicable")
    lines = []
    totals = dict(problems=0, applicable=0, valid=0, rejected=0, not_applicable=0)
    for concept, c in summary.items():
        for key in totals:
            totals[key] += c[key]
        lines.append((concept, c["problems"], c["applicable"], c["valid"], c["rejected"], c["not_applicable"],
                      f"{100.0 * c['valid'] / c['applicable']:.1f}%" if c["applicable"] else "-"))
    lines.append(("total", totals["problems"], totals["applicable"], totals["valid"], totals["rejected"],
                  totals["not_applicable"],
                  f"{100.0 * totals['valid'] / totals['applicable']:.1f}%" if totals["applicable"] else "-"))
    table = [header] + [tuple(str(v) for v in line) for line in lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def fmt(row) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(table[0]), rule] + [fmt(r) for r in table[1:-1]] + [rule, fmt(table[-1])])


def rejection_reasons(records: Iterable[CounterfactualRecord], top: int = 5) -> dict[str, list[tuple[str, int]]]:
    """The most common rejection stages per concept (for a quick look at why candidates fail)."""
    out: dict[str, dict[str, int]] = {}
    for record in records:
        if record.status == REJECTED:
            stage = str(record.stage) or "unknown"
            out.setdefault(record.concept.value, {}).setdefault(stage, 0)
            out[record.concept.value][stage] += 1
    return {c: sorted(s.items(), key=lambda kv: (-kv[1], kv[0]))[:top] for c, s in out.items()}
