"""The validation pipeline: every candidate counterfactual goes through the same checks, in order.

1. **duplicate** (of the original): the candidate's text equals the original program;
2. **parse**: it is valid Python;
3. **no-op**: its AST equals the original's (only formatting or comments changed);
4. **concept**: the intended change, and only it, happened (:mod:`procure_trl.validation.concept_checks`,
   which compares ASTs and never trusts what the generator reports; for a user-defined concept,
   :mod:`procure_trl.validation.rule_checks`: only sites of its ast-grep rules changed, each into its fix);
5. **spans**: the changed spans, when given, are in bounds, sorted, disjoint, and every character
   outside them is the original's (the training mask depends on them);
6. **execution**: the problem's tests pass on the candidate, in a sandboxed subprocess with a timeout.
   The original program runs too, once per problem, so that a broken problem is reported as such and
   not blamed on its perturbations.
7. **duplicate** (of an accepted candidate): a candidate that passed everything else repeats the text
   of a candidate of the same problem accepted before it in the batch order (or in an earlier call), see
   :mod:`procure_trl.validation.duplicates`. A rejected candidate never makes another one a duplicate.

Executions are collected over the whole batch and sent to the executor in one call, so its worker
pool runs them in parallel.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

from procure_trl.concepts import AnyConcept, UserConcept
from procure_trl.problems import Problem
from procure_trl.statuses import REJECTED, VALID, Stage
from procure_trl.validation.concept_checks import check_concept
from procure_trl.validation.duplicates import AcceptedCandidates
from procure_trl.validation.rule_checks import check_rule_rewrite


@dataclass
class ValidationConfig:
    r"""How candidates are validated (shared by the rule engine and the LLM generator).

    Parameters:
        timeout (`float`, defaults to `30.0`):
            Wall-clock seconds for one program's tests. The slowest MBPP reference (MBPP/123) needs about 8 s on
            a loaded 2-core machine; a wide margin keeps verdicts, and so the output, the same from run to run.
        execute (`bool`, defaults to `True`):
            Run the problem's tests on each candidate that passes the static checks.
        check_original (`bool`, defaults to `True`):
            Also run the original program's tests (once per problem) to tell broken problems apart.
        check_spans (`bool`, defaults to `True`):
            Check `changed_spans` when a candidate carries them.
        num_workers (`int`, defaults to `2`):
            Executor worker processes (used when the validator creates its own executor).
        progress (`bool`, defaults to `False`):
            Show a progress bar while the tests run.
    """

    timeout: float = field(default=30.0, metadata={"help": "seconds allowed for one program's tests"})
    execute: bool = field(default=True, metadata={"help": "run the problem's tests on each candidate",
                                                    "off_help": "do not run the problem's tests on the candidates"})
    check_original: bool = field(
        default=True, metadata={"help": "also run the original program's tests, to tell broken problems apart",
                                  "off_help": "do not run the original program's tests"}
    )
    check_spans: bool = field(default=True, metadata={"help": "check changed_spans when a candidate carries them",
                                                        "off_help": "do not check the changed_spans candidates carry"})
    num_workers: int = field(default=2, metadata={"help": "executor worker processes"})
    progress: bool = field(default=False, metadata={"help": "show a progress bar while the tests run"})


@dataclass(frozen=True)
class Candidate:
    """A perturbed program to validate."""

    problem: Problem
    concept: AnyConcept
    code: str
    """The perturbed full program (the counterpart of ``problem.program``)."""
    changed_spans: tuple[tuple[int, int], ...] | None = None
    """``[start, end)`` offsets into ``code`` of the changed text, or ``None`` when unknown."""
    sites: int = 1
    """How many places the perturbation changed (flipped ifs, swapped pairs, split definitions)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one candidate."""

    status: str
    """``"valid"`` or ``"rejected"``."""
    reason: str
    """Why it was rejected (``""`` when valid)."""
    stage: Stage
    """The check that decided: ``duplicate``, ``parse``, ``no-op``, ``concept``, ``spans``, ``original``,
    ``execution``, or ``passed``."""

    @property
    def valid(self) -> bool:
        return self.status == VALID


def check_spans(original: str, code: str, spans: Sequence[Sequence[int]]) -> str | None:
    """``None`` when ``spans`` are well-formed offsets into ``code`` outside which ``code`` is ``original``.

    Outside the spans the candidate must be the original text, in order: the first unchanged segment is
    a prefix of the original, the last a suffix, and the ones between appear in between, in order.
    """
    previous_end = 0
    for index, span in enumerate(spans):
        if len(span) != 2 or not all(isinstance(v, int) for v in span):
            return f"changed span #{index} {span!r} is not a [start, end) pair of ints"
        start, end = span
        if not 0 <= start <= end <= len(code):
            return f"changed span #{index} [{start}, {end}) is outside the program (length {len(code)})"
        if start < previous_end:
            return f"changed span #{index} [{start}, {end}) overlaps or precedes the span before it"
        previous_end = end
    if not spans:
        return "the candidate carries no changed span"
    bounds = [0] + [v for span in spans for v in span] + [len(code)]
    segments = [code[bounds[i]:bounds[i + 1]] for i in range(0, len(bounds), 2)]
    if not original.startswith(segments[0]) or not original.endswith(segments[-1]):
        return "text before the first or after the last changed span differs from the original"
    position = len(segments[0])
    limit = len(original) - len(segments[-1])
    for segment in segments[1:-1]:
        found = original.find(segment, position, limit)
        if found < 0:
            return "text between changed spans differs from the original (a change lies outside the spans)"
        position = found + len(segment)
    return None


def _execution_reason(result) -> str:
    message = (result.message or "").strip().splitlines()
    first = message[0][:300] if message else ""
    if str(result.status) == "timed_out":
        return f"tests timed out: {first or 'time limit reached'}"
    return f"tests failed: {result.error_type or 'Error'}" + (f": {first}" if first else "")


class Validator:
    """Validates candidates; remembers the accepted candidates of each problem for de-duplication.

    Use as a context manager when it creates its own executor, so the worker processes are closed::

        with Validator(ValidationConfig(num_workers=4)) as validator:
            verdicts = validator.validate(candidates)

    Args:
        config: the checks to run and the execution settings.
        executor: an existing :class:`procure_trl.execution.Executor` to share; ``None`` creates one
            on first use (and closes it on exit).
    """

    def __init__(self, config: ValidationConfig | None = None, executor=None) -> None:
        self.config = config or ValidationConfig()
        self._executor = executor
        self._owns_executor = executor is None
        self.accepted = AcceptedCandidates()  # fed in batch order, across calls
        self._original_verdicts: dict[str, str | None] = {}  # task_id -> None (passes) or reason

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_executor and self._executor is not None:
            self._executor.close()
            self._executor = None

    def _get_executor(self):
        if self._executor is None:
            from procure_trl.execution import ExecutionLimits, Executor

            self._executor = Executor(num_workers=self.config.num_workers,
                                      limits=ExecutionLimits(timeout=self.config.timeout))
        return self._executor

    # -- the checks ------------------------------------------------------------------------------------
    def static_check(self, candidate: Candidate) -> Verdict | None:
        """Checks 1-5 (no execution, no state); ``None`` when the candidate passes them all."""
        problem = candidate.problem
        original = problem.program
        if candidate.code == original:
            return Verdict(REJECTED, "duplicate of the original program", Stage.DUPLICATE)
        try:
            cand_tree = ast.parse(candidate.code)
        except SyntaxError as err:
            return Verdict(REJECTED, f"does not parse: {err.msg} (line {err.lineno})", Stage.PARSE)
        except ValueError as err:
            return Verdict(REJECTED, f"does not parse: {err}", Stage.PARSE)
        try:
            orig_tree = ast.parse(original)
        except (SyntaxError, ValueError) as err:
            return Verdict(REJECTED, f"the original program of {problem.task_id} does not parse ({err}); "
                                     "fix its prompt/solution", Stage.PARSE)
        if ast.dump(cand_tree) == ast.dump(orig_tree):
            return Verdict(REJECTED, "same program as the original (only formatting or comments differ)", Stage.NO_OP)
        if isinstance(candidate.concept, UserConcept):
            reason = check_rule_rewrite(original, candidate.code, candidate.changed_spans, candidate.concept,
                                        sites=candidate.sites)
        else:
            reason = check_concept(orig_tree, cand_tree, candidate.concept, protected_names=(problem.entry_point,),
                                   sites=candidate.sites)
        if reason is not None:
            return Verdict(REJECTED, f"{candidate.concept} check: {reason}", Stage.CONCEPT)
        if self.config.check_spans and candidate.changed_spans is not None:
            reason = check_spans(original, candidate.code, candidate.changed_spans)
            if reason is not None:
                return Verdict(REJECTED, f"changed spans: {reason}", Stage.SPANS)
        return None

    def validate(self, candidates: Sequence[Candidate], deduplicate: bool = True) -> list[Verdict]:
        """Validate a batch; the verdicts come back in the candidates' order.

        With ``deduplicate``, a candidate that passes every check but repeats one accepted before it (in
        this batch's order, or in an earlier call) is rejected as a ``duplicate``. Pass ``False`` to
        decide duplicates yourself, e.g. once all candidates of a problem are known
        (:class:`~procure_trl.validation.duplicates.AcceptedCandidates`).
        """
        verdicts = self._checked(candidates)
        if not deduplicate:
            return verdicts
        out = []
        for candidate, verdict in zip(candidates, verdicts):
            duplicate = (self.accepted.admit(candidate.problem.task_id, candidate.concept.value, candidate.code)
                         if verdict.valid else None)
            out.append(verdict if duplicate is None else Verdict(REJECTED, duplicate, Stage.DUPLICATE))
        return out

    def _checked(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        """Checks 1-6 of every candidate (executions in one executor call); no de-duplication."""
        from procure_trl.execution import ExecutionJob

        verdicts: list[Verdict | None] = [self.static_check(c) for c in candidates]
        if not self.config.execute:
            return [v or Verdict(VALID, "", Stage.PASSED) for v in verdicts]
        jobs: list = []
        owners: list[tuple[str, int | str]] = []  # ("candidate", index) or ("original", task_id)
        if self.config.check_original:
            queued: set[str] = set()
            for candidate, verdict in zip(candidates, verdicts):
                task_id = candidate.problem.task_id
                if verdict is None and task_id not in self._original_verdicts and task_id not in queued:
                    jobs.append(ExecutionJob(candidate.problem.program, candidate.problem.tests,
                                             timeout=self.config.timeout))
                    owners.append(("original", task_id))
                    queued.add(task_id)
        for index, (candidate, verdict) in enumerate(zip(candidates, verdicts)):
            if verdict is None:
                jobs.append(ExecutionJob(candidate.code, candidate.problem.tests, timeout=self.config.timeout))
                owners.append(("candidate", index))
        results = self._get_executor().run(jobs, progress=self.config.progress) if jobs else []
        by_candidate: dict[int, object] = {}
        for (kind, key), result in zip(owners, results):
            if kind == "original":
                self._original_verdicts[key] = None if result.passed else _execution_reason(result)  # type: ignore[index]
            else:
                by_candidate[key] = result  # type: ignore[index]
        out: list[Verdict] = []
        for index, (candidate, verdict) in enumerate(zip(candidates, verdicts)):
            if verdict is not None:
                out.append(verdict)
                continue
            broken = self._original_verdicts.get(candidate.problem.task_id)
            if broken:
                out.append(Verdict(REJECTED, f"the original program fails its own tests ({broken}); "
                                             "the problem is broken, not the perturbation", Stage.ORIGINAL))
                continue
            result = by_candidate[index]
            if result.passed:  # type: ignore[attr-defined]
                out.append(Verdict(VALID, "", Stage.PASSED))
            else:
                out.append(Verdict(REJECTED, _execution_reason(result), Stage.EXECUTION))
        return out

    def validate_one(self, candidate: Candidate, deduplicate: bool = True) -> Verdict:
        return self.validate([candidate], deduplicate=deduplicate)[0]
