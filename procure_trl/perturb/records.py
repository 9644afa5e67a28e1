"""One output line of ``procure perturb`` (either generator) and the one JSONL writer and reader for it.

Every line is a :class:`CounterfactualRecord`: the rule engine (:mod:`procure_trl.perturb.engine`) and the LLM
generator (:mod:`procure_trl.perturb.llm.generator`) build them, the dataset builder
(:mod:`procure_trl.dataset.rows`) and the evaluation harness read them back with
:func:`read_records`.

The file is append-only while a run works: :class:`RecordWriter` writes each finished line with one
``write`` call and ``fsync``s it, so a killed run leaves complete lines plus at most one torn last line,
which a resumed run cuts off. When the run ends, :func:`write_records` rewrites the file in input order
then concept order (an atomic replace), so an interrupted-then-resumed run ends with the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from procure_trl.analysis.spans import validate_spans
from procure_trl.concepts import AnyConcept, Concept, UserConcept
from procure_trl.errors import ExistingOutputError, MissingInputError, NotPermittedError, UserError
from procure_trl.problems import json_error_text
from procure_trl.statuses import STATUSES, VALID, Stage

__all__ = [
    "RECORD_FIELDS",
    "CounterfactualRecord",
    "OutputConfig",
    "RecordWriter",
    "check_output_path",
    "read_records",
    "sort_records",
    "write_records",
]

@dataclass
class OutputConfig:
    r"""How ``procure perturb`` treats its output file and bad input (either generator).

    Parameters:
        resume (`bool`, defaults to `False`):
            Keep the problems already written to the output and generate only the others.
        overwrite (`bool`, defaults to `False`):
            Replace an existing output. Without `resume` or `overwrite` an existing output is refused.
        strict (`bool`, defaults to `False`):
            Exit non-zero when any input row is bad (invalid JSON, missing fields, a program that does not parse).
    """

    resume: bool = field(default=False, metadata={
        "help": "continue an interrupted run: keep the problems already in --output, generate the others"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --output"})
    strict: bool = field(default=False, metadata={
        "help": "exit with status 1 when any input row is bad (listed at the end of the run)"})

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite exclude each other: keep the rows (--resume) or replace "
                            "them (--overwrite)")


#: Fields every line must have, whatever its status.
#: ``generator`` of the rows of a user-defined concept (its ast-grep rules)
AST_GREP = "ast-grep"
RECORD_FIELDS = ("task_id", "concept", "status", "original")
#: Fields only the lines of ``procure mutate`` have.
MUTANT_FIELDS = ("mutation", "mutant_of", "counterfactual")


@dataclass(frozen=True)
class CounterfactualRecord:
    """One output line: a (problem, concept) pair and what became of it.

    Parameters:
        task_id: the problem (for a bad input row without a usable id: ``path:line``).
        concept: the perturbation concept (a name is parsed into a :class:`~procure_trl.concepts.Concept`).
        status: ``valid``, ``not_applicable`` or ``rejected`` (:mod:`procure_trl.statuses`).
        reason: why it is not valid (``""`` when valid and validated).
        original: the full original program (prompt + solution); the raw line for a bad input row.
        code: the perturbed full program, when one was produced (also for rejected candidates, to inspect).
        changed_spans: ``[start, end)`` character offsets into ``code`` of the changed text.
        stage: the step that decided (a :class:`~procure_trl.statuses.Stage`); ``""`` in files written
            before stages were recorded.
        generator: who produced ``code``: ``rule``, ``llm``, or ``ast-grep`` (the rules of a user-defined
            concept, ``procure perturb --concept-rules``; only these rows may name a concept that is not
            built in).
        attempts: LLM only: model answers used (``None`` for the rule engine).
        usage: LLM only: ``{"prompt_tokens", "completion_tokens"}`` over all attempts, cached or not.
        sites: rule engine: how many places ``code`` changes (flipped ifs, swapped pairs, split
            definitions, renamed variables); ``None`` when no program was produced.
        variant: rule engine with ``--variants N > 1``: which of the (problem, concept)'s distinct
            counterfactuals this is (0, 1, ...); ``None`` otherwise.
        mutation: ``procure mutate`` rows only: the :class:`~procure_trl.perturb.mutants.MutationKind` of the
            mutant in ``code`` (``None`` on counterfactual rows). On such a row ``valid`` means a kept mutant:
            it parses, differs from its source only inside ``changed_spans``, and fails the problem's tests.
        mutant_of: ``procure mutate`` rows only: which program ``code`` mutates, ``original`` or
            ``counterfactual``.
        counterfactual: ``procure mutate`` rows only: the counterfactual program the row derives from (the source
            of ``code`` when ``mutant_of`` is ``counterfactual``).
    """

    task_id: str
    concept: AnyConcept
    status: str
    reason: str = ""
    original: str = ""
    code: str | None = None
    changed_spans: tuple[tuple[int, int], ...] = ()
    stage: Stage | str = ""
    generator: str = "rule"
    attempts: int | None = None
    usage: Mapping[str, int] | None = None
    sites: int | None = None
    variant: int | None = None
    mutation: str | None = None
    mutant_of: str | None = None
    counterfactual: str | None = None

    def __post_init__(self) -> None:
        # Accept names as well as enums, and any span sequence: the record always holds the typed form.
        object.__setattr__(self, "concept", Concept.parse(self.concept, unregistered=self.generator == AST_GREP))
        if isinstance(self.concept, UserConcept) and self.generator == "rule":
            object.__setattr__(self, "generator", AST_GREP)  # rows of user concepts say so (and so read back)
        if self.stage in Stage._value2member_map_:
            object.__setattr__(self, "stage", Stage(self.stage))
        object.__setattr__(self, "changed_spans", tuple((int(s), int(e)) for s, e in self.changed_spans))

    @property
    def key(self) -> tuple:
        """``(task_id, concept name)``, plus the variant number when there is one: a run has exactly one
        line per key."""
        key: tuple = (self.task_id, self.concept.value)
        if self.variant is not None:
            key += (self.variant,)
        if self.mutation is not None:  # a mutant row: one per (counterfactual, kind, side)
            key += (self.mutation, self.mutant_of)
        return key

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the line (LLM-only fields only when set)."""
        row: dict[str, Any] = {
            "task_id": self.task_id,
            "concept": self.concept.value,
            "status": self.status,
            "reason": self.reason,
            "original": self.original,
            "code": self.code,
            "changed_spans": [list(span) for span in self.changed_spans],
            "stage": str(self.stage),
            "generator": self.generator,
        }
        if self.attempts is not None:
            row["attempts"] = self.attempts
        if self.usage is not None:
            row["usage"] = dict(self.usage)
        if self.sites is not None:
            row["sites"] = self.sites
        if self.variant is not None:
            row["variant"] = self.variant
        for name in MUTANT_FIELDS:
            if getattr(self, name) is not None:
                row[name] = getattr(self, name)
        return row

    def to_json(self) -> str:
        """The line, without its newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], where: str = "row") -> CounterfactualRecord:
        """Validate one JSON object; errors name ``where`` (``file:line``), the field and the fix."""
        if not isinstance(row, Mapping):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [name for name in RECORD_FIELDS if name not in row]
        if missing:
            raise UserError(
                f"{where}: missing field(s) {', '.join(missing)}; lines need {', '.join(RECORD_FIELDS)} "
                "(and code + changed_spans when status is 'valid') -- was the file written by `procure perturb`?"
            )
        try:
            concept = Concept.parse(row["concept"], unregistered=row.get("generator") == AST_GREP)
        except (ValueError, AttributeError) as err:
            raise UserError(f"{where}: {err}") from None
        status = row["status"]
        if status not in STATUSES:
            raise UserError(f"{where}: unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        for name in ("task_id", "original"):
            if not isinstance(row[name], str) or not row[name]:
                raise UserError(f"{where}: field {name!r} must be a non-empty string")
        code = row.get("code")
        if code is not None and not isinstance(code, str):
            raise UserError(f"{where}: field 'code' must be a string or null")
        stage = str(row.get("stage") or "")
        if status == VALID:
            missing = [name for name in ("code", "changed_spans") if row.get(name) is None]
            if missing:
                raise UserError(
                    f"{where}: a 'valid' line needs field(s) {', '.join(missing)} (the perturbed program and its spans)"
                )
        raw_spans = row.get("changed_spans") or []
        if status == VALID:  # training masks are built from these: check them against the code
            assert code is not None  # a 'valid' line without code was refused above
            spans = validate_spans(raw_spans, len(code), where=f"{where}: changed_spans")
        else:  # kept to inspect a rejected candidate, whose spans may be what got it rejected
            try:
                spans = [(int(s), int(e)) for s, e in raw_spans]
            except (TypeError, ValueError):
                raise UserError(f"{where}: changed_spans must be a list of [start, end) integer pairs") from None
        if status == VALID and not spans and stage != Stage.UNVALIDATED:
            raise UserError(
                f"{where}: a 'valid' counterfactual has no changed_spans; every perturbation changes some code"
            )
        attempts = row.get("attempts")
        usage = row.get("usage")
        counts: dict[str, Any] = {}  # int or None, then str or None: checked per field
        for name in ("sites", "variant"):
            value = row.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise UserError(f"{where}: field {name!r} must be a non-negative integer or absent, got {value!r}")
            counts[name] = value
        for name in MUTANT_FIELDS:
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                raise UserError(f"{where}: field {name!r} must be a string or absent, got {value!r}")
            counts[name] = value
        if counts["mutant_of"] not in (None, "original", "counterfactual"):
            raise UserError(f"{where}: field 'mutant_of' must be 'original' or 'counterfactual', "
                             f"got {counts['mutant_of']!r}")
        return cls(
            task_id=row["task_id"], concept=concept, status=status, reason=str(row.get("reason") or ""),
            original=row["original"], code=code, changed_spans=tuple(spans), stage=stage,
            generator=str(row.get("generator") or "rule"),
            attempts=int(attempts) if attempts is not None else None,
            usage=dict(usage) if isinstance(usage, Mapping) else None,
            **counts,
        )


#: Former names of the record (rule engine and dataset builder), kept so existing code keeps working.
PairRecord = EngineRecord = CounterfactualRecord


def read_records(path: str | os.PathLike, *, allow_empty: bool = False,
                 torn_tail: bool = False) -> list[CounterfactualRecord]:
    """Read and validate a ``procure perturb`` JSONL file; the first bad line raises with its ``file:line``.

    Parameters:
        path: the file.
        allow_empty: return ``[]`` for a file without lines instead of raising.
        torn_tail: ignore bytes after the last newline (a write cut short by a kill), as a resumed
            run does; otherwise they are read as a line.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f"{path} does not exist; give a file written by `procure perturb`") from None
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or type(err).__name__}); give a JSONL file") from None
    return _parse_records(_whole_lines(data) if torn_tail else data, path, allow_empty=allow_empty)


def _whole_lines(data: bytes) -> bytes:
    """``data`` up to its last newline: without the torn line a write cut short by a kill leaves."""
    return data[: data.rfind(b"\n") + 1]


def _parse_records(data: bytes, path: str | os.PathLike, *, allow_empty: bool) -> list[CounterfactualRecord]:
    """The records of the JSONL bytes ``data`` read from ``path`` (named in errors); see :func:`read_records`."""
    records = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); give a JSONL file") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: not valid JSON ({json_error_text(err)}); fix or remove that line") from None
        records.append(CounterfactualRecord.from_dict(row, where))
    if not records and not allow_empty:
        raise UserError(f"{path}: no lines; run `procure perturb` first")
    return records


#: Former name of :func:`read_records`.
read_engine_jsonl = read_records


def write_records(records: Iterable[CounterfactualRecord], path: str | os.PathLike) -> None:
    """Write records as JSONL (UTF-8, ``\\n`` line ends), replacing the file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # on disk before it replaces the old file: a crash leaves one or the other
    os.replace(tmp, path)


def sort_records(
    records: Iterable[CounterfactualRecord], order: Sequence[tuple[str, str]]
) -> list[CounterfactualRecord]:
    """``records`` in ``order`` of ``(task_id, concept)`` keys, the variants of a key by number; records whose
    key is not in ``order`` follow, as they came."""
    rank = {key: i for i, key in enumerate(order)}
    return sorted(records, key=lambda r: (rank[r.key[:2]], r.variant or 0) if r.key[:2] in rank else (len(rank), 0))


def check_output_path(path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Fail before any work when ``path`` cannot be the output: it exists (without ``resume``/``overwrite``)
    or its folder cannot be written. Creates missing parent folders. Returns ``path`` as a :class:`Path`.

    Raises:
        FileExistsError: ``path`` holds lines and neither ``resume`` nor ``overwrite`` is set.
        ValueError: ``resume`` and ``overwrite`` together.
        PermissionError: the folder cannot be created or written (the message names it).
    """
    path = Path(path)
    if resume and overwrite:
        OutputConfig(resume=resume, overwrite=overwrite)  # raises, naming both flags
    if path.is_dir():
        raise NotPermittedError(
            f"cannot write the output {path}: it is a folder; give a file path such as {path / 'out.jsonl'}"
        )
    if path.exists() and path.stat().st_size > 0 and not (resume or overwrite):
        raise ExistingOutputError(
            f"{path} already exists; pass --resume to keep its rows and add the missing ones, "
            "--overwrite to replace it, or choose another --output"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Permission bits say too little (root, read-only mounts, /proc): try to create a file there.
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise NotPermittedError(
            f"cannot write the output {path}: its folder {path.parent} is not writable "
            f"({err.strerror or type(err).__name__}); choose another --output"
        ) from None
    return path


def _not_bad_input(record: CounterfactualRecord) -> bool:
    return record.stage != Stage.INPUT


def settings_path(path: str | os.PathLike) -> Path:
    """Where the settings that made the output ``path`` are recorded: ``OUT.jsonl.run.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".run.json")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "(none)"
    return value if isinstance(value, str) else json.dumps(value)


def settings_difference(then: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """``"seed 0 then, 3 now; limit ..."``: the settings that differ (in ``now``'s order), or None."""
    keys = [k for k in now if then.get(k) != now[k]] + [k for k in then if k not in now]
    if not keys:
        return None
    return "; ".join(f"{k} {_show(then.get(k, '(unset)'))} then, {_show(now.get(k, '(unset)'))} now" for k in keys)


class RecordWriter:
    """Appends records to ``path``, one ``fsync``'ed line each; see the module docstring.

    A resumed run calls :meth:`keep_whole_problems` to learn which problems are done, writes the others
    and ends with :meth:`finish`, which puts every line in input order.

    Parameters:
        path: the JSONL output.
        resume: keep the lines already in ``path`` (:attr:`existing`) and append after them.
        overwrite: replace an existing ``path``. Without ``resume`` or ``overwrite`` an existing,
            non-empty ``path`` raises :class:`FileExistsError` on :meth:`open`.
        generator: ``rule`` or ``llm``: with ``resume``, refuse a file written by the other generator.
        settings: what makes the run (input fingerprint, limit, seed, concepts, generator settings), JSON
            values. Recorded beside the output (:func:`settings_path`) when a run starts; with ``resume``, an
            existing output is continued only when its record holds the same settings (else ``ValueError``
            naming the difference).
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False, overwrite: bool = False,
                 generator: str | None = None, settings: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.resume = resume
        self.overwrite = overwrite
        self.generator = generator
        self.settings = dict(settings) if settings is not None else None
        self.existing: list[CounterfactualRecord] = []
        """Lines kept from an earlier run."""
        self.written: list[CounterfactualRecord] = []
        """Lines written by this run."""
        self._handle: TextIO | None = None

    @property
    def done(self) -> set[tuple[str, str]]:
        """Keys of the lines kept from an earlier run."""
        return {r.key for r in self.existing}

    def open(self) -> RecordWriter:
        check_output_path(self.path, resume=self.resume, overwrite=self.overwrite)
        if self.resume and self.path.exists():
            # one read: the records kept and the length cut to are then of the same bytes
            data = self.path.read_bytes()
            whole = _whole_lines(data)
            self.existing = _parse_records(whole, self.path, allow_empty=True)
            if len(whole) < len(data):  # drop a torn last line left by a kill
                os.truncate(self.path, len(whole))
            foreign = [r for r in self.existing if self.generator and r.generator != self.generator]
            if foreign:
                raise UserError(
                    f"{self.path} holds rows of --generator {foreign[0].generator} (e.g. {foreign[0].task_id}); "
                    f"--resume continues a run of --generator {self.generator} only: choose another --output"
                )
            if self.existing:
                self._check_settings()
        self._record_settings()
        self._handle = open(self.path, "a" if self.resume else "w", encoding="utf-8", newline="\n")
        return self

    def _check_settings(self) -> None:
        """With ``resume``: the earlier run had the same :attr:`settings` (raises ``ValueError`` naming what
        differs)."""
        if self.settings is None:
            return
        record = settings_path(self.path)
        try:
            then = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserError(f"--resume: {self.path} has no readable record of the settings that made it ({record}); "
                             "rerun with --overwrite to start again, or choose another --output") from None
        difference = settings_difference(then, self.settings)
        if difference:
            raise UserError(f"--resume continues the same run only, and {self.path} was made with other settings: "
                             f"{difference}; rerun with those settings, or with --overwrite to start again")

    def _record_settings(self) -> None:
        if self.settings is not None:
            record = settings_path(self.path)
            record.write_text(json.dumps(self.settings, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    def keep_whole_problems(
        self, order: Sequence[tuple[str, str]], done: Callable[[CounterfactualRecord], bool] = _not_bad_input
    ) -> set[str]:
        """Keep the earlier lines of the problems that are done; return their task ids.

        A problem of ``order`` is done when each of its ``(task_id, concept)`` keys has a line that
        ``done`` accepts (by default: any line but a bad-input one, which is cheap to derive again and
        may have been fixed). The lines of the other problems are dropped, so each is redone whole: the
        validator then sees its candidates in the same order as in an uninterrupted run (de-duplication
        looks at the other concepts of the problem). Lines of problems not in ``order`` are kept.
        """
        wanted: dict[str, set[str]] = {}
        for task_id, concept in order:
            wanted.setdefault(task_id, set()).add(concept)
        have: dict[str, set[str]] = {}
        for record in self.existing:
            if done(record):
                have.setdefault(record.task_id, set()).add(record.concept.value)
        complete = {task for task, concepts in wanted.items() if concepts <= have.get(task, set())}
        keep = [r for r in self.existing if done(r) and (r.task_id in complete or r.task_id not in wanted)]
        if len(keep) != len(self.existing):
            self.retain(keep)
        return complete

    def retain(self, keep: Iterable[CounterfactualRecord]) -> None:
        """Keep only ``keep`` of the earlier lines (rewrites the file)."""
        self.close()
        self.existing = list(keep)
        write_records(self.existing, self.path)
        self._handle = open(self.path, "a", encoding="utf-8", newline="\n")

    def finish(self, order: Sequence[tuple[str, str]]) -> list[CounterfactualRecord]:
        """Close, and rewrite the file with every line (earlier and new) in ``order``; returns the lines.

        The order does not depend on when each pair finished, so an interrupted-then-resumed run ends
        with the same bytes as an uninterrupted one.
        """
        self.close()
        rows = sort_records(self.existing + self.written, order)
        write_records(rows, self.path)
        return rows

    def write(self, record: CounterfactualRecord) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[CounterfactualRecord]) -> None:
        """Append records, then flush and ``fsync`` once: they are on disk when this returns."""
        if self._handle is None:
            raise RuntimeError("open() the writer before writing")
        records = list(records)
        for record in records:
            self._handle.write(record.to_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.written.extend(records)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RecordWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
