"""LLM-guided counterfactual generation: prompt, validate, repair, write.

For each (problem, concept) pair the :class:`LLMGenerator`

1. renders the concept-guided one-shot chain-of-thought prompt with the program's static-analysis facts
   (:mod:`procure_trl.perturb.llm.prompts`);
2. asks the endpoint (:class:`~procure_trl.perturb.llm.client.ChatClient`: bounded concurrency, retries, cache);
3. parses the answer's fenced code block and sends the candidate through the SAME validation pipeline as
   the rule-based engine (:mod:`procure_trl.validation`);
4. on rejection, sends the validator's reason back, up to ``repair_rounds`` times;
5. once every pair of a problem is done, decides duplicates in concept order (a candidate is a duplicate
   only of an *accepted* candidate of the same problem, :mod:`procure_trl.validation.duplicates`), so
   neither the verdicts nor the repair prompts depend on which pair finished first;
6. writes the problem's rows, append-only, so a killed run resumes where it stopped.

A pair whose requests failed after all retries gets a ``rejected`` row with stage ``endpoint``: it is not
done for ``resume`` (it is asked again) and :attr:`GenerationReport.endpoint_errors` counts it.

Rows have the rule engine's schema plus ``attempts`` (model answers used) and ``usage`` (tokens over all
attempts, whether fetched or served from the cache, so a rerun writes identical rows). ``changed_spans``
come from a diff against the original (:func:`procure_trl.perturb.llm.spans.changed_spans`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from procure_trl.concepts import Concept, concept_names_in
from procure_trl.perturb.engine import (
    format_rejects_by_stage,
    format_totals_table,
    invalid_records,
    pair_order,
    protected_names,
)
from procure_trl.perturb.llm.cache import ResponseCache
from procure_trl.perturb.llm.client import ChatClient, ClientStats, LLMFatalError, LLMRequestError, Usage

# The configuration lives in a module that imports no ``openai``, so ``procure perturb --help`` stays fast.
from procure_trl.perturb.llm.config import DEFAULT_PRICES, LLMConfigError, LLMGeneratorConfig, parse_price  # noqa: E402,F401
from procure_trl.perturb.llm.prompts import (
    FactsFn,
    build_messages,
    build_repair_message,
    default_facts,
    extract_code,
    has_candidate_site,
)
from procure_trl.perturb.llm.spans import changed_spans
from procure_trl.perturb.records import CounterfactualRecord, RecordWriter, sort_records
from procure_trl.problems import InvalidProblem, Problem
from procure_trl.statuses import NOT_APPLICABLE, REJECTED, VALID, Stage
from procure_trl.validation import AcceptedCandidates, Candidate, Validator


@dataclass
class GenerationReport:
    """What a run produced: every row of the output (resumed ones included) and what it cost."""

    rows: list[CounterfactualRecord]
    new_rows: int
    resumed_rows: int
    stats: ClientStats
    model: str
    repair_rounds: int
    price: tuple[float, float] | None

    @property
    def endpoint_errors(self) -> int:
        """Rows whose requests failed after all retries: not done, ``resume`` asks again."""
        return sum(r.stage == Stage.ENDPOINT for r in self.rows)

    @property
    def cost_usd(self) -> float | None:
        if self.price is None:
            return None
        return (self.stats.billed.prompt_tokens * self.price[0]
                + self.stats.billed.completion_tokens * self.price[1]) / 1e6


class LLMGenerator:
    """Generate counterfactual programs with a chat model; see the module docstring.

    Args:
        config: the settings.
        validator: the rule engine's :class:`~procure_trl.validation.Validator` to share (its executor and
            the original programs' verdicts; duplicates are decided per run); ``None`` creates one from
            ``config.validation`` per run.
        facts_fn: static-analysis facts per (program, concept) (default: the rule engine's analysis).
    """

    def __init__(
        self,
        config: LLMGeneratorConfig,
        *,
        validator: Validator | None = None,
        facts_fn: FactsFn | None = default_facts,
    ) -> None:
        self.config = config
        self._api_key = config.resolve_api_key()  # fail before any work, naming the variable
        self.validator = validator
        self.facts_fn = facts_fn

    # -- public API ------------------------------------------------------------------------------------
    def generate(
        self, problems: Sequence[Problem | InvalidProblem], concepts: Sequence[Concept | str] | None = None
    ) -> list[CounterfactualRecord]:
        """Rows for every (problem, concept) pair, in memory (see :meth:`generate_to_jsonl` for files)."""
        return _run_sync(self.agenerate(problems, concepts))

    async def agenerate(
        self, problems: Sequence[Problem | InvalidProblem], concepts: Sequence[Concept | str] | None = None
    ) -> list[CounterfactualRecord]:
        """Async :meth:`generate`, for callers that already run an event loop (e.g. Jupyter)."""
        order = pair_order(problems, concepts)
        rows: list[CounterfactualRecord] = []
        await self._run(problems, concepts, rows.extend, existing=[])
        return sort_records(rows, order)

    def generate_to_jsonl(
        self,
        problems: Sequence[Problem | InvalidProblem],
        concepts: Sequence[Concept | str] | None,
        path: str | os.PathLike[str],
        resume: bool = False,
        overwrite: bool = False,
    ) -> GenerationReport:
        """Append one row per missing pair to ``path`` (JSONL) as each finishes; see
        :mod:`procure_trl.perturb.records`."""
        return _run_sync(self.agenerate_to_jsonl(problems, concepts, path, resume=resume, overwrite=overwrite))

    async def agenerate_to_jsonl(
        self,
        problems: Sequence[Problem | InvalidProblem],
        concepts: Sequence[Concept | str] | None,
        path: str | os.PathLike[str],
        resume: bool = False,
        overwrite: bool = False,
    ) -> GenerationReport:
        """Async :meth:`generate_to_jsonl`, for callers that already run an event loop.

        The rows of a problem are appended once all its pairs are done (problems in completion order);
        once every pair is done the file is rewritten atomically in input order, then concept order, like
        the rule engine's output, so a rerun served from the cache, or an interrupted run resumed, gives a
        byte-identical file. With ``resume``, a problem is done when each of its pairs has a row without
        an endpoint error; the others are redone whole (answers received before come from the cache).
        """
        order = pair_order(problems, concepts)  # bad concepts / duplicate ids fail before the file is touched
        with RecordWriter(path, resume=resume, overwrite=overwrite, generator="llm") as writer:
            writer.keep_whole_problems(order, done=_done)
            stats = await self._run(problems, concepts, writer.write_many, existing=writer.existing)
            rows = writer.finish(order)
        return GenerationReport(
            rows=rows,
            new_rows=len(writer.written),
            resumed_rows=len(writer.existing),
            stats=stats,
            model=self.config.model,
            repair_rounds=self.config.repair_rounds,
            price=self.config.prices.get(self.config.model),
        )

    # -- orchestration ---------------------------------------------------------------------------------
    async def _run(
        self,
        problems: Sequence[Problem | InvalidProblem],
        concepts: Sequence[Concept | str] | None,
        sink: Callable[[Sequence[CounterfactualRecord]], None],
        existing: Sequence[CounterfactualRecord],
    ) -> ClientStats:
        """Run every pair without a row in ``existing`` with ``max_concurrency`` workers; ``sink`` gets the
        finished rows, a problem's rows together, in concept order, once its last pair is done."""
        from tqdm.auto import tqdm

        cfg = self.config
        parsed = Concept.parse_list(list(concepts) if concepts is not None else None)
        done = {r.key for r in existing}
        # Bad input rows are reported like the rule engine does (rejected, stage "input"), with no request.
        for bad in (p for p in problems if isinstance(p, InvalidProblem)):
            for record in invalid_records(bad, parsed):
                if record.key not in done:
                    sink([replace(record, generator="llm", attempts=0, usage=Usage().to_dict())])
        problems = [p for p in problems if not isinstance(p, InvalidProblem)]
        pairs = [(p, c) for p in problems for c in parsed if (p.task_id, c.value) not in done]
        todo, pending = iter(pairs), len(pairs)
        client = ChatClient(
            model=cfg.model,
            api_key=self._api_key,
            base_url=cfg.base_url,
            params=cfg.request_params(),
            request_timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
            initial_backoff=cfg.initial_backoff,
            max_backoff=cfg.max_backoff,
            max_concurrency=cfg.max_concurrency,
            cache=ResponseCache(cfg.cache_dir) if cfg.use_cache else None,
            seed=cfg.seed,
        )
        validator = self.validator if self.validator is not None else Validator(cfg.validation)
        # Every piece of AST work (static analysis for the prompt, validation) runs on this one thread
        # while the event loop keeps the other pairs' requests flowing: the validator keeps state (the
        # original programs' verdicts, its executor), and CPython 3.11's AST constructor is not safe to
        # use from two threads at once ("AST constructor recursion depth mismatch"). Validation does
        # not de-duplicate here: a verdict, hence a repair prompt, depends on the candidate alone.
        analysis_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="procure-analysis")
        loop = asyncio.get_running_loop()

        def on_analysis_thread(fn: Callable, *args, **kwargs) -> asyncio.Future:
            return loop.run_in_executor(analysis_thread, partial(fn, *args, **kwargs))

        def validate(candidate: Candidate) -> asyncio.Future:
            return on_analysis_thread(validator.validate_one, candidate, deduplicate=False)

        problem_rows = _ProblemRows(parsed, existing, sink)
        for problem in problems:
            problem_rows.expect(problem.task_id, sum((problem.task_id, c.value) not in done for c in parsed))
        bar = tqdm(total=pending, desc=f"llm {cfg.model}", unit="pair", disable=not cfg.show_progress,
                   file=sys.stderr)

        async def worker() -> None:
            # Workers share one iterator; the event loop runs one coroutine at a time, so no lock.
            for problem, concept in todo:
                row = await self._pair(client, on_analysis_thread, validate, problem, concept)
                problem_rows.add(row)  # written with its problem's last pair: a kill loses unfinished problems
                bar.update(1)

        workers = [asyncio.create_task(worker()) for _ in range(min(cfg.max_concurrency, max(pending, 1)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # A fatal endpoint error (or a cancel): stop the other workers; their pairs stay undone.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            bar.close()
            await client.aclose()
            analysis_thread.shutdown(wait=True)
            if self.validator is None:
                validator.close()
        return client.stats

    def _first_prompt(self, problem: Problem, concept: Concept) -> tuple[Any, list[dict]]:
        """The static-analysis facts of ``problem`` for ``concept`` and the first prompt built on them."""
        keep = protected_names(problem)  # the entry point and the top-level names the tests use
        facts = self.facts_fn(problem.program, concept, keep) if self.facts_fn is not None else None
        messages = build_messages(problem.program, concept, facts, problem.entry_point, self.facts_fn,
                                  protected_names=keep)
        return facts, messages

    async def _pair(
        self, client: ChatClient, on_analysis_thread: Callable, validate: Callable, problem: Problem,
        concept: Concept,
    ) -> CounterfactualRecord:
        """Prompt, validate and repair one pair; always returns a row (only fatal errors propagate)."""
        original = problem.program
        facts, messages = await on_analysis_thread(self._first_prompt, problem, concept)
        usage = Usage()
        attempts = 0
        reason, stage = "", ""
        last_code: str | None = None

        def row(status: str, why: str, code: str | None, decided_by: Stage) -> CounterfactualRecord:
            return CounterfactualRecord(
                task_id=problem.task_id, concept=concept, status=status, reason=why, original=original, code=code,
                changed_spans=tuple(changed_spans(original, code)) if code is not None else (), stage=decided_by,
                generator="llm", attempts=attempts, usage=usage.to_dict(),
            )

        if self.config.skip_without_site and has_candidate_site(facts, concept) is False:
            return row(NOT_APPLICABLE, f"static analysis found no {concept} site; no request sent", None,
                       Stage.PERTURBATION)
        for _round in range(self.config.repair_rounds + 1):
            try:
                response = await client.complete(messages)
            except LLMFatalError:
                raise
            except LLMRequestError as err:
                return row(REJECTED, f"endpoint error: {err}", last_code, Stage.ENDPOINT)
            attempts += 1
            usage += response.usage
            parsed = extract_code(response.text)
            if parsed.not_applicable is not None:
                return row(NOT_APPLICABLE, f"model: {parsed.not_applicable}", None, Stage.PERTURBATION)
            if parsed.code is None:
                reason, stage = parsed.error or "no code", Stage.ANSWER
                if response.finish_reason == "length":
                    reason = (f"the answer was cut off at the token limit (max_tokens={self.config.max_tokens}) "
                              "before the code block ended; keep the reasoning short")
            else:
                last_code = _match_trailing_whitespace(parsed.code, original)
                if not self.config.validate:
                    return row(VALID, "not validated (--no-validate)", last_code, Stage.UNVALIDATED)
                spans = tuple((s, e) for s, e in changed_spans(original, last_code))
                verdict = await validate(Candidate(problem, concept, last_code, spans))
                if verdict.valid:
                    return row(VALID, "", last_code, verdict.stage)
                if verdict.stage == Stage.ORIGINAL:  # the reference fails its own tests: no answer can pass
                    return row(REJECTED, verdict.reason, last_code, verdict.stage)
                reason, stage = verdict.reason, verdict.stage
            messages = messages + [{"role": "assistant", "content": response.text}, build_repair_message(reason)]
        return row(REJECTED, f"rejected after {attempts} attempt(s): {reason}", last_code, stage)


class _ProblemRows:
    """Holds each problem's finished rows until its last pair is done, then decides duplicates in concept
    order and passes the rows on together (see :mod:`procure_trl.validation.duplicates`).

    Rows already in the output (``existing``, from a resumed run) are final: their accepted candidates
    are remembered first, so a new candidate that repeats one of them is the duplicate.
    """

    def __init__(self, concepts: Sequence[Concept], existing: Sequence[CounterfactualRecord],
                 sink: Callable[[Sequence[CounterfactualRecord]], None]) -> None:
        self._rank = {c: i for i, c in enumerate(concepts)}
        self._sink = sink
        self._expected: dict[str, int] = {}
        self._held: dict[str, list[CounterfactualRecord]] = {}
        self.accepted = AcceptedCandidates()
        for row in sorted(existing, key=lambda r: self._rank.get(r.concept, len(self._rank))):
            if row.status == VALID and row.code is not None:
                self.accepted.admit(row.task_id, row.concept.value, row.code)

    def expect(self, task_id: str, pairs: int) -> None:
        self._expected[task_id] = pairs

    def add(self, row: CounterfactualRecord) -> None:
        held = self._held.setdefault(row.task_id, [])
        held.append(row)
        if len(held) < self._expected[row.task_id]:
            return
        del self._held[row.task_id]
        self._sink([self._deduplicated(r) for r in sorted(held, key=lambda r: self._rank[r.concept])])

    def _deduplicated(self, row: CounterfactualRecord) -> CounterfactualRecord:
        if row.status != VALID or row.stage == Stage.UNVALIDATED:  # --no-validate checks nothing
            return row
        duplicate = self.accepted.admit(row.task_id, row.concept.value, row.code)
        if duplicate is None:
            return row
        return replace(row, status=REJECTED, reason=duplicate, stage=Stage.DUPLICATE)


def _run_sync(coroutine):
    """``asyncio.run`` with a useful message when called from a running loop (Jupyter, async apps)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError(
        "LLMGenerator.generate/generate_to_jsonl cannot run inside a running event loop; "
        "use `await generator.agenerate(...)` or `await generator.agenerate_to_jsonl(...)` instead"
    )


def _match_trailing_whitespace(code: str, original: str) -> str:
    """Give ``code`` the original's trailing whitespace: models normalise file ends, which changes nothing."""
    return code.rstrip() + original[len(original.rstrip()):]


def format_llm_summary(report: GenerationReport) -> str:
    """A table with the valid rate per concept and (cumulatively) per repair round, then usage and cost."""
    rounds = report.repair_rounds
    by_concept: dict[str, list[CounterfactualRecord]] = {}
    for r in report.rows:
        by_concept.setdefault(r.concept.value, []).append(r)
    order = concept_names_in(by_concept)  # every concept of the rows, built-in ones first
    head = ["concept", "pairs", "valid", "n/a", "rejected", "bad input", "valid%"] + [
        f"<=r{k}" for k in range(rounds + 1)
    ]
    lines = []

    def line(name: str, rows: list[CounterfactualRecord]) -> list[str]:
        bad = sum(r.stage == Stage.INPUT for r in rows)
        n = len(rows) - bad  # bad input rows are reported apart, not as pairs the model could do
        valid = [r for r in rows if r.status == VALID]
        cells = [name, str(len(rows)), str(len(valid)), str(sum(r.status == NOT_APPLICABLE for r in rows)),
                 str(sum(r.status == REJECTED for r in rows) - bad), str(bad), _pct(len(valid), n)]
        # "<=rk": share of pairs valid after at most k repair rounds (attempts <= k + 1).
        cells += [
            _pct(sum((1 if r.attempts is None else r.attempts) <= k + 1 for r in valid), n) for k in range(rounds + 1)
        ]
        return cells

    if report.endpoint_errors:
        first = next(r for r in report.rows if r.stage == Stage.ENDPOINT)
        lines.append(f"endpoint errors: {report.endpoint_errors} of {len(report.rows)} pairs got no answer after "
                     f"all retries (e.g. {first.task_id} {first.concept}: {first.reason}); "
                     "rerun with --resume to ask again")
        lines.append("")
    lines.append(format_totals_table(head, [line(c, by_concept[c]) for c in order], line("total", report.rows)))
    s = report.stats
    lines.append("")
    by_stage = format_rejects_by_stage(report.rows)
    if by_stage:
        lines.append(by_stage)
    lines.append(
        f"rows: {report.new_rows} new, {report.resumed_rows} resumed; requests sent: {s.requests} "
        f"({s.retries} retries, {s.failures} failed), cache hits: {s.cache_hits}"
    )
    lines.append(
        f"tokens billed: {s.billed.prompt_tokens} prompt + {s.billed.completion_tokens} completion; "
        f"from cache: {s.cached.prompt_tokens} + {s.cached.completion_tokens}"
    )
    cost = report.cost_usd
    if cost is None:
        lines.append(f"estimated cost: unknown (no price for model {report.model!r}; pass --price MODEL=IN,OUT)")
    else:
        lines.append(f"estimated cost: ${cost:.4f} (at ${report.price[0]}/{report.price[1]} per 1M tokens)")
    return "\n".join(lines)


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f}" if n else "-"


def _done(record: CounterfactualRecord) -> bool:
    """Whether a row of an earlier run counts as done on ``resume``: not a bad input row (derived again from
    the input, which may have been fixed) nor an endpoint error (asked again)."""
    return record.stage not in (Stage.INPUT, Stage.ENDPOINT)
