"""The rule-engine run: problems -> rule-based perturbations -> validation -> output records.

One :class:`~procure_trl.perturb.records.CounterfactualRecord` per (problem, concept), in input order then
concept order, so the same inputs and seed give byte-identical output. :func:`format_summary_table`
prints the per-concept counts; the LLM generator (:mod:`procure_trl.perturb.llm`) writes the same records and
reuses the table and the validator.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from procure_trl.concepts import AnyConcept, Concept, all_concepts
from procure_trl.errors import UserError
from procure_trl.perturb.records import CounterfactualRecord, RecordWriter
from procure_trl.problems import InvalidProblem, Problem
from procure_trl.statuses import NOT_APPLICABLE, REJECTED, VALID, Stage
from procure_trl.validation.pipeline import ValidationConfig


def default_num_workers() -> int:
    """Test-running processes when none is asked for: up to 4, never more than the CPUs."""
    return min(4, os.cpu_count() or 1)


def _concepts(text: str) -> list[AnyConcept | str]:
    """``--concepts``: built-in names become :class:`Concept` members; other names stay strings until
    :class:`GenerationConfig` has loaded ``--concept-rules`` (which may define them)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("no concept given; pass a comma-separated list such as name_random,if_else_flip")
    return [Concept.parse(n) if n in Concept._value2member_map_ else n for n in names]


@dataclass
class GenerationConfig:
    r"""Settings of :func:`generate_counterfactuals` (the rule engine's options of ``procure perturb``).

    Parameters:
        concepts (`Sequence[Concept]`, *optional*):
            Concepts to apply to every problem, in output order. Unset: all five, or with `concept_rules` the
            concepts its rules define. Names of concepts defined in `concept_rules` may be listed too.
        concept_rules (`str`, *optional*):
            A YAML file of ast-grep rules, each naming the user-defined concept it perturbs
            (:mod:`procure_trl.perturbations.concept_rules`); its concepts are registered when the config is made.
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
        max_source_kb (`int`, defaults to `200`):
            Largest program (prompt + solution, in kB of UTF-8) that is analysed; a bigger one becomes a bad
            input row (stage ``input``) and the run goes on. Every HumanEval and MBPP program is under 5 kB.
        analysis_timeout (`float`, defaults to `10.0`):
            Seconds allowed for the analyses of one problem (every concept and variant together); past it the
            problem becomes a bad input row. The analyses run in a worker process, which is then replaced.
        analysis_memory_mb (`int`, defaults to `1024`):
            Address space (MiB) of that worker process; an analysis that needs more makes its problem a bad
            input row. 0: no limit.
    """

    concepts: Sequence[AnyConcept] | None = field(
        default=None,
        metadata={"help": "comma-separated concepts to apply (built-in, or defined in --concept-rules)",
                  "parse": _concepts, "metavar": "a,b,...",
                  "default_text": "all five: " + ",".join(c.value for c in Concept)
                                  + "; with --concept-rules: the concepts its rules define"},
    )
    concept_rules: str | None = field(
        default=None,
        metadata={"help": "YAML file of ast-grep rules (pattern, constraints, fix), each naming the concept it "
                          "perturbs; their rewrites are validated like the built-in concepts' (see "
                          "docs/concept_rules.md; examples in procure_trl/rules/)", "metavar": "RULES.yml"},
    )
    seed: int = field(
        default=0, metadata={"help": "base seed; each (task, concept) derives its own from it"}
    )
    validate: bool = field(
        default=True,
        metadata={"help": "validate every candidate (dedup, parse, concept check, tests); off: every produced "
                          "program is written as 'valid' (unchecked)",
                  "off_help": "skip validation: write every produced program as 'valid' without de-duplication, "
                              "parsing, the concept check or the tests"},
    )
    num_workers: int = field(
        default_factory=default_num_workers,
        metadata={"help": "processes that run the tests", "default_text": "min(4, CPU count)"},
    )
    timeout: float = field(
        default=ValidationConfig.timeout,
        metadata={"help": "seconds allowed for one program's tests (generous, so that slow reference "
                          "solutions give the same verdict on a loaded machine)"},
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars", "off_help": "hide the progress bars"})
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

    max_source_kb: int = field(
        default=200,
        metadata={"help": "largest program (prompt + solution, kB) that is analysed; a bigger one becomes a bad "
                          "input row and the run goes on"},
    )
    analysis_timeout: float = field(
        default=10.0,
        metadata={"help": "seconds allowed for the analyses of one problem (all its concepts and variants); past "
                          "it the problem becomes a bad input row"},
    )
    analysis_memory_mb: int = field(
        default=1024,
        metadata={"help": "memory (MiB of address space) of the process that analyses the programs; a problem "
                          "whose analysis needs more becomes a bad input row (0: no limit)"},
    )

    def __post_init__(self) -> None:
        rule_concepts: list[AnyConcept] = []
        if self.concept_rules:
            from procure_trl.perturbations.concept_rules import load_concept_rules

            rule_concepts = list(load_concept_rules(self.concept_rules))
        if self.concepts is None:
            self.concepts = tuple(rule_concepts) if rule_concepts else tuple(Concept)
        try:
            self.concepts = tuple(Concept.parse(c) for c in self.concepts)
        except ValueError as err:
            hint = "" if self.concept_rules else " (user-defined concepts need --concept-rules RULES.yml)"
            raise UserError(f"--concepts: {err}{hint}") from None
        if self.num_workers < 1:
            raise UserError(f"num_workers (--num-workers) must be >= 1, got {self.num_workers}")
        if self.sites < 1:
            raise UserError(f"sites (--sites) must be >= 1, got {self.sites}")
        if self.variants < 1:
            raise UserError(f"variants (--variants) must be >= 1, got {self.variants}")
        if not self.timeout > 0:
            raise UserError(f"timeout (--timeout) must be > 0 seconds, got {self.timeout}")
        if self.max_source_kb < 1:
            raise UserError(f"max_source_kb (--max-source-kb) must be >= 1, got {self.max_source_kb}")
        if not self.analysis_timeout > 0:
            raise UserError(f"analysis_timeout (--analysis-timeout) must be > 0 seconds, got {self.analysis_timeout}")
        if self.analysis_memory_mb < 0:
            raise UserError(f"analysis_memory_mb (--analysis-memory-mb) must be >= 0, got {self.analysis_memory_mb}")

    @property
    def concept_list(self) -> tuple[AnyConcept, ...]:
        """``concepts`` as ``__post_init__`` resolved them: never ``None`` once the config exists."""
        if self.concepts is None:  # only when set to None after construction
            raise RuntimeError("GenerationConfig.concepts is None: set it before __post_init__ resolves it")
        return tuple(self.concepts)


#: draws per wanted variant before giving up on finding more distinct counterfactuals
VARIANT_ATTEMPTS = 8


def derive_seed(seed: int, task_id: str, concept: Concept | str, draw: int = 0) -> int:
    """A stable 63-bit seed for one (task, concept) and draw: the same everywhere, unlike Python's salted
    ``hash``. Draw 0 is the seed of a one-variant run."""
    key = f"{seed}\x00{task_id}\x00{Concept.parse(concept).value}" + (f"\x00{draw}" if draw else "")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def perturb_variants(source: str, task_id: str, concept: Concept, config: GenerationConfig,
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


def row_id(problem: Problem | InvalidProblem) -> str:
    """The ``task_id`` of a problem's output lines: a bad input row without a usable one is named by its place."""
    return problem.task_id if isinstance(problem, Problem) else (problem.task_id or problem.where)


def pair_order(
    problems: Sequence[Problem | InvalidProblem], concepts: Sequence[AnyConcept | str] | None
) -> list[tuple[str, str]]:
    """The ``(task_id, concept)`` keys of a run, in output order (input order, then concept order).

    Raises:
        ValueError: two problems share a ``task_id`` (lines are keyed by it, so resuming would mix them).
    """
    parsed = Concept.parse_list(list(concepts) if concepts is not None else None)
    ids = [row_id(p) for p in problems]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise UserError(f"duplicate task_id(s) {dup}: each problem needs a unique task_id")
    return [(i, c.value) for i in ids for c in parsed]


def invalid_records(row: InvalidProblem, concepts: Sequence[AnyConcept]) -> list[CounterfactualRecord]:
    """The ``rejected`` records (stage ``input``) that report a bad input row once per concept."""
    reason = f"invalid input row: {row.reason}"
    return [CounterfactualRecord(row_id(row), c, REJECTED, reason, row.program or row.where, stage=Stage.INPUT)
            for c in concepts]


def generate_counterfactuals(
    problems: Sequence[Problem | InvalidProblem],
    config: GenerationConfig | None = None,
    validator=None,
) -> list[CounterfactualRecord]:
    """Apply every concept of ``config`` to every problem with the rule-based perturbations; validate.

    Invalid input rows and programs that do not parse become ``rejected`` records (stage ``input``)
    naming the row and the fix; one bad row never stops the batch. ``validator`` (a
    :class:`procure_trl.validation.Validator`) may be shared; by default one is created with
    ``config``'s workers and timeout. See :func:`generate_to_jsonl` to write a file as the run goes.
    """
    records: list[CounterfactualRecord] = []
    _run(problems, config or GenerationConfig(), validator, records.extend)
    return records


def generate_to_jsonl(
    problems: Sequence[Problem | InvalidProblem],
    path: str | os.PathLike,
    config: GenerationConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    validator=None,
    inputs: dict | None = None,
) -> list[CounterfactualRecord]:
    """:func:`generate_counterfactuals`, appending each problem's lines to ``path`` as soon as they are decided.

    The finished file is in input order then concept order, whether the run was interrupted and resumed
    or not (see :class:`~procure_trl.perturb.records.RecordWriter`).

    Parameters:
        problems: the problems (and bad input rows) to perturb.
        path: the JSONL output.
        config: the rule engine's settings.
        resume: keep the problems already done in ``path`` and add the others.
        overwrite: replace an existing ``path`` (without ``resume`` or ``overwrite`` it is refused).
        validator: a :class:`~procure_trl.validation.Validator` to share.
        inputs: where the problems came from (e.g. ``{"input": ..., "limit": ...}``), recorded with the run's
            settings (:func:`run_settings`); ``resume`` refuses a file made with other settings.

    Returns:
        Every line of the finished file, in its order.
    """
    config = config or GenerationConfig()
    order = pair_order(problems, config.concepts)
    settings = {**(inputs or {}), **run_settings(problems, config)}
    with RecordWriter(path, resume=resume, overwrite=overwrite, generator="rule", settings=settings) as writer:
        done = writer.keep_whole_problems(order)
        _run([p for p in problems if row_id(p) not in done], config, validator, writer.write_many)
        return writer.finish(order)


def _fingerprint(value) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def run_settings(problems: Sequence[Problem | InvalidProblem], config: GenerationConfig) -> dict:
    """What decides the lines of a run (recorded beside its output; ``--resume`` continues a run only when these
    match): a fingerprint of the problems, and the generator settings that change rows (not workers, timeouts,
    progress or the per-problem bounds: bad-input rows are redone on resume anyway)."""
    rows = [p.to_dict() if isinstance(p, Problem) else [p.where, p.reason] for p in problems]
    rules = None
    if config.concept_rules:
        try:
            with open(config.concept_rules, "rb") as handle:
                rules = "sha256:" + hashlib.sha256(handle.read()).hexdigest()[:16]
        except OSError:
            rules = str(config.concept_rules)
    return {"problems": f"{len(rows)} ({_fingerprint(rows)})", "generator": "rule", "seed": config.seed,
            "concepts": [Concept.parse(c).value for c in config.concept_list], "concept_rules": rules,
            "sites": config.sites, "variants": config.variants, "validate": config.validate}


def _run(problems: Sequence[Problem | InvalidProblem], config: GenerationConfig, validator,
         sink: Callable[[list[CounterfactualRecord]], None]) -> None:
    """Decide ``problems`` a batch at a time; ``sink`` gets each batch's lines, in input order."""
    from tqdm.auto import tqdm

    from procure_trl.validation import ValidationConfig, Validator

    own = validator is None and config.validate
    if own:
        validator = Validator(ValidationConfig(timeout=config.timeout, num_workers=config.num_workers))
    # Batches big enough to keep every worker busy, small enough that an interrupt loses little.
    size = max(8, 4 * config.num_workers)
    try:
        with tqdm(total=len(problems), desc="perturbing", unit="problem", disable=not config.progress) as bar:
            for start in range(0, len(problems), size):
                batch = problems[start:start + size]
                sink(_decide(batch, config, validator))
                bar.update(len(batch))
    finally:
        if own:
            validator.close()  # also on KeyboardInterrupt: no worker process is left behind


def _over_size(problem: Problem, config: GenerationConfig) -> InvalidProblem | None:
    """The bad input row of a program over ``config.max_source_kb`` (checked before anything analyses it)."""
    from procure_trl.problems import oversize_reason

    reason = oversize_reason(problem.program, config.max_source_kb, problem.task_id)
    return None if reason is None else InvalidProblem(problem.task_id, problem.task_id, reason, problem.program)


def _over_limit(problem: Problem, reason: str) -> InvalidProblem:
    """The bad input row of a problem whose analysis passed a bound."""
    flag = "--analysis-timeout" if "longer than" in reason else "--analysis-memory-mb"
    return InvalidProblem(problem.task_id, problem.task_id,
                          f"{problem.task_id}: {reason} (limit: {flag}); shorten the program or raise the limit",
                          problem.program)


def _decide(
    problems: Sequence[Problem | InvalidProblem], config: GenerationConfig, validator
) -> list[CounterfactualRecord]:
    """The lines of ``problems``: perturb every (problem, concept) in the bounded worker
    (:mod:`procure_trl.perturb.bounded`), then validate the candidates in one batch."""
    from procure_trl.perturb.bounded import OverLimit, shared_perturber
    from procure_trl.validation import Candidate

    concepts = [Concept.parse(c) for c in config.concept_list]
    perturber = shared_perturber(config.analysis_memory_mb)
    slots: list[CounterfactualRecord] = []
    candidates: list[Candidate] = []
    candidate_slots: list[int] = []
    for problem in problems:
        if isinstance(problem, Problem):
            problem = _over_size(problem, config) or problem
        if isinstance(problem, InvalidProblem):
            slots.extend(invalid_records(problem, concepts))
            continue
        job = {"source": problem.program, "task_id": problem.task_id, "concepts": concepts, "config": config,
               "protected": protected_names(problem)}
        try:
            outcomes = perturber.run(job, config.analysis_timeout)
        except OverLimit as err:
            slots.extend(invalid_records(_over_limit(problem, str(err)), concepts))
            continue
        for concept, outcome in zip(concepts, outcomes):
            line = partial(CounterfactualRecord, problem.task_id, concept, original=problem.program)
            if outcome.error == "invalid":
                slots.append(line(REJECTED, f"invalid input: {outcome.message} (task {problem.task_id}: fix its "
                                            "prompt/solution)", stage=Stage.INPUT))
                continue
            if outcome.error == "crash":
                slots.append(line(REJECTED, f"the {concept} perturbation crashed: {outcome.message}",
                                  stage=Stage.PERTURBATION))
                continue
            results = outcome.results
            if not results[0].applied:
                slots.append(line(NOT_APPLICABLE, results[0].reason, stage=Stage.PERTURBATION))
                continue
            for number, result in enumerate(results):
                spans = tuple((int(s), int(e)) for s, e in result.changed_spans)
                slots.append(line(VALID, "not validated (--no-validate)", code=result.code, changed_spans=spans,
                                  stage=Stage.UNVALIDATED, sites=result.sites,
                                  variant=number if config.variants > 1 else None))
                candidates.append(Candidate(problem, concept, result.code, spans, sites=result.sites))
                candidate_slots.append(len(slots) - 1)
    if config.validate and candidates:
        for slot, verdict in zip(candidate_slots, validator.validate(candidates)):
            slots[slot] = replace(slots[slot], status=verdict.status, reason=verdict.reason, stage=verdict.stage)
    return slots


def bad_input_rows(records: Iterable[CounterfactualRecord]) -> list[CounterfactualRecord]:
    """One line per bad input row (stage ``input``: invalid JSON, missing fields, a program that does not parse)."""
    seen: set[str] = set()
    out = []
    for record in records:
        if record.stage == Stage.INPUT and record.task_id not in seen:
            seen.add(record.task_id)
            out.append(record)
    return out


def format_bad_input(records: Iterable[CounterfactualRecord], show: int = 5) -> str:
    """The console block that names the bad input rows (count, then the first ``show``); ``""`` when none."""
    bad = bad_input_rows(records)
    if not bad:
        return ""
    lines = [f"bad input: {len(bad)} row(s), not counted as applicable (fix them, then rerun with --resume):"]
    for record in bad[:show]:
        reason = record.reason.removeprefix("invalid input row: ")
        lines.append(f"  {reason}" if reason.startswith(record.task_id) else f"  {record.task_id}: {reason}")
    if len(bad) > show:
        lines.append(f"  ... and {len(bad) - show} more (stage 'input' in the output)")
    return "\n".join(lines)


def format_rejects_by_stage(records: Iterable[CounterfactualRecord]) -> str:
    """``"rejected by stage: execution 3, concept 1"`` (bad input rows apart); ``""`` when nothing was rejected."""
    stages: dict[str, int] = {}
    for record in records:
        if record.status == REJECTED and record.stage != Stage.INPUT:
            stage = str(record.stage) or "unknown"
            stages[stage] = stages.get(stage, 0) + 1
    if not stages:
        return ""
    return "rejected by stage: " + ", ".join(
        f"{k} {v}" for k, v in sorted(stages.items(), key=lambda kv: (-kv[1], kv[0]))
    )


_COUNTS = ("problems", "applicable", "valid", "rejected", "bad_input", "not_applicable")


def summarize(records: Iterable[CounterfactualRecord]) -> dict[str, dict[str, int]]:
    """Per concept: ``problems``, ``applicable`` (a program was produced), ``valid``, ``rejected``,
    ``bad_input`` (bad input rows: neither applicable nor rejected), ``not_applicable``; concepts in
    registry order (built-in, then registered user concepts), then unknown ones (user concepts read back)."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        entry = counts.setdefault(record.concept.value, dict.fromkeys(_COUNTS, 0))
        entry["problems"] += 1
        if record.stage == Stage.INPUT:
            entry["bad_input"] += 1
            continue
        entry[record.status] += 1
        if record.status != NOT_APPLICABLE:
            entry["applicable"] += 1
    known = [c.value for c in all_concepts()]
    order = [name for name in known if name in counts] + sorted(set(counts) - set(known))
    return {name: counts[name] for name in order}


def format_totals_table(header: Sequence[str], body: Sequence[Sequence[str]], total: Sequence[str]) -> str:
    """A plain-text table: ``header``, a rule, the ``body`` rows, a rule, the ``total`` row. The first column
    (names) is left-aligned, the others (counts and rates) right-aligned, each as wide as its widest cell."""
    table = [header, *body, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, body), *([rule] if body else []), fmt(total)])


def format_summary_table(rows: Iterable[CounterfactualRecord]) -> str:
    """A plain-text table of per-concept counts and totals, then the rejections by stage."""
    rows = list(rows)
    summary = summarize(rows)
    totals = {key: sum(c[key] for c in summary.values()) for key in _COUNTS}
    header = ("concept", "problems", "applicable", "valid", "rejected", "bad input", "not applicable",
              "valid/applicable")

    def cells(name: str, c: dict[str, int]) -> tuple[str, ...]:
        rate = f"{100.0 * c['valid'] / c['applicable']:.1f}%" if c["applicable"] else "-"
        return (name, *(str(c[key]) for key in _COUNTS), rate)

    lines = [format_totals_table(header, [cells(name, c) for name, c in summary.items()], cells("total", totals))]
    by_stage = format_rejects_by_stage(rows)
    return "\n".join(lines + ([by_stage] if by_stage else []))
