"""The counterfactual dataset: schema, rows from the engine's JSONL, a task-level split, Hub layout.

The engine (``procure perturb``) writes one JSON line per (problem, concept). This module turns those
lines into training rows, one per program, in the schema documented on the dataset card:

==================  ======================================  ============================================
column              type                                    meaning
==================  ======================================  ============================================
``task_id``         string                                  benchmark task, e.g. ``HumanEval/0``
``pair_id``         string                                  shared by an original and its counterfactuals
``concept``         string                                  ``original``, a built-in or a user-defined concept
``prompt``          string, or a list of messages (chat)    what the model reads (see below)
``completion``      string, or a list of messages (chat)    what it writes: the program, or its rest
``changed_spans``   list of ``[start, end)`` int32 pairs    changed characters of the completion's program
``sites``           int32                                   places the counterfactual changes (0 for originals)
``variant``         int32 (null)                            which of a (task, concept)'s counterfactuals
                                                            (``procure perturb --variants N``); null otherwise
``input_ids``       list of int32 (optional)                tokens of prompt + completion (one tokenizer)
``completion_mask`` list of int8 (optional)                 1 on completion tokens, as TRL computes it
``perturbation_mask`` list of int8 (optional)               1 on tokens overlapping ``changed_spans``
==================  ======================================  ============================================

``prompt`` and ``completion`` follow the dataset's prompt format (:mod:`procure_trl.dataset.prompt_format`, recorded
on the card as ``prompt_format``): ``completion`` rows split the program where the harness's prompt ends (for
an original, ``prompt + completion`` is the task's program); ``chat`` rows are conversational (user: the
statement and an instruction; assistant: the program).

Configs (subsets): ``all`` holds every row; each concept's config (the five built-in ones, then every
user-defined concept the rows hold) holds that concept's counterfactuals *and the originals they pair
with*, so every config trains on complete pairs.
Splits are drawn per group of near-duplicate tasks (seeded, :mod:`procure_trl.dataset.near_duplicates`), so no task, and
no near duplicate of a task, is in both ``train`` and ``test`` of any config.

Only ``datasets`` is imported (lazily, by the functions that build ``Dataset`` objects); the row
logic is pure Python and testable on its own.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from procure_trl.concepts import ORIGINAL, Concept
from procure_trl.dataset.masks import prompt_completion_mask
from procure_trl.dataset.prompt_format import row_program
from procure_trl.errors import MissingInputError, UserError, first_line
from procure_trl.hub import require_hub, require_local_or_hub
from procure_trl.perturb.records import AST_GREP, CounterfactualRecord
from procure_trl.provenance import TOKENIZER_COLUMNS, tokenizer_fingerprint
from procure_trl.statuses import REJECTED, VALID, Stage

if TYPE_CHECKING:
    from datasets import DatasetDict, Features

    from procure_trl.dataset.near_duplicates import ComparableTask
    from procure_trl.dataset.prompt_format import TaskText

__all__ = [
    "CONFIG_NAMES",
    "config_names",
    "pair_id_for",
    "problem_statement",
    "build_rows",
    "excluded_tasks",
    "task_source",
    "TaskSplit",
    "split_tasks",
    "split_by_task",
    "rows_of_split",
    "task_texts",
    "config_rows",
    "add_token_columns",
    "dataset_features",
    "build_dataset_dict",
    "BuiltDataset",
    "concept_counts",
    "records_from_rows",
    "load_dataset_dict",
    "select_split",
    "load_dataset_split",
    "check_dataset_name",
]

#: Config (subset) names, in card order: ``all`` then one per built-in concept (user-defined concepts follow,
#: see :func:`config_names`).
CONFIG_NAMES: tuple[str, ...] = ("all", *(c.value for c in Concept))


def _user_concepts(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Concept names of ``rows`` that are neither ``original`` nor built in, in first-seen order."""
    return list(
        dict.fromkeys(r["concept"] for r in rows if r["concept"] not in CONFIG_NAMES and r["concept"] != ORIGINAL)
    )


def config_names(rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """:data:`CONFIG_NAMES`, then the user-defined concepts that ``rows`` hold."""
    return (*CONFIG_NAMES, *_user_concepts(rows))
#: Text columns every row has; tokenized columns come after them when a tokenizer is given.
TEXT_COLUMNS = ("task_id", "pair_id", "concept", "prompt", "completion", "changed_spans", "sites", "variant")
TOKEN_COLUMNS = ("input_ids", "completion_mask", "perturbation_mask", *TOKENIZER_COLUMNS)


def pair_id_for(task_id: str, original: str) -> str:
    """Stable id shared by an original program and its counterfactuals: the task plus a content hash.

    Hashing the program (not numbering rows) keeps ids stable across rebuilds and distinct when a task
    has more than one original solution.
    """
    digest = hashlib.sha1(original.encode("utf-8")).hexdigest()[:10]
    return f"{task_id}#{digest}"


def problem_statement(prompt: str, entry_point: str | None = None) -> str:
    """The natural-language statement of a benchmark prompt.

    HumanEval-style prompts (signature + docstring): the docstring of ``entry_point`` (or of the last
    function that has one). Comment-style prompts (MBPP, CodeContests in this project): the leading
    ``#`` comment block, uncommented. Otherwise the prompt itself, stripped.
    """
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        tree = None
    if tree is not None:
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        preferred = [f for f in functions if f.name == entry_point] + functions[::-1]
        for function in preferred:
            doc = ast.get_docstring(function)
            if doc:
                return inspect.cleandoc(doc)
    lines = prompt.lstrip("\n").splitlines()
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line[2:] if line.startswith("# ") else line[1:])
    if comment:
        return "\n".join(comment).strip()
    return prompt.strip()


#: Engine stages whose lines never become rows: a bad input row (its ``original`` is the raw line, not a
#: program) and a reference solution that fails its own tests (the whole task is left out).
SKIPPED_STAGES: dict[Stage | str, str] = {
    Stage.INPUT: "invalid input row", Stage.ORIGINAL: "reference solution fails its own tests"}


def excluded_tasks(records: Iterable[CounterfactualRecord]) -> dict[str, str]:
    """Tasks left out of the dataset, with the reason: bad input rows and broken reference solutions."""
    out: dict[str, str] = {}
    for record in records:
        if record.status == REJECTED and record.stage in SKIPPED_STAGES:
            out.setdefault(record.task_id, SKIPPED_STAGES[record.stage])
    return out


def build_rows(
    records: Iterable[CounterfactualRecord], tasks: Mapping[str, TaskText | str], *, allow_unvalidated: bool = False,
    prompt_format: str = "completion",
) -> list[dict[str, Any]]:
    """Rows of the schema: one ``original`` per distinct (task, program), one row per valid counterfactual.

    ``tasks`` maps task ids to their :class:`~procure_trl.dataset.prompt_format.TaskText` (a plain string is taken as
    the statement of a task whose program start is unknown: its ``completion`` rows have an empty prompt); a task
    without one raises, naming the task and how to provide it. ``prompt`` and ``completion`` are written in
    ``prompt_format`` (:func:`procure_trl.dataset.prompt_format.training_example`). Tasks in :func:`excluded_tasks` give
    no rows. ``valid`` lines the engine did not validate (``procure perturb --no-validate``) raise unless
    ``allow_unvalidated``: the card promises executed, checked counterfactuals.
    """
    from procure_trl.dataset.prompt_format import TaskText

    records = list(records)
    excluded = excluded_tasks(records)
    rows: list[dict[str, Any]] = []
    seen_originals: set[str] = set()
    seen_counterfactuals: set[tuple[str, str]] = set()
    for record in records:
        if record.task_id in excluded:
            continue
        if record.status == VALID and record.stage == Stage.UNVALIDATED and not allow_unvalidated:
            raise UserError(
                f"task {record.task_id!r}, concept {record.concept}: the counterfactual was not validated "
                "(written by `procure perturb --no-validate`); re-run the engine with validation, or pass "
                "--allow_unvalidated to build from unchecked programs"
            )
        if record.task_id not in tasks:
            raise UserError(
                f"no problem statement for task {record.task_id!r}; pass the benchmark it comes from "
                "(--benchmarks humaneval,mbpp) or a problems JSONL (--problems PATH) that contains it"
            )
        task = tasks[record.task_id]
        task = task if isinstance(task, TaskText) else TaskText(record.task_id, "", task)
        pair_id = pair_id_for(record.task_id, record.original)
        if pair_id not in seen_originals:
            seen_originals.add(pair_id)
            rows.append(_row(record.task_id, pair_id, ORIGINAL, prompt_format, task, record.original, [], 0, None))
        if record.status != VALID:
            continue
        key = (pair_id, record.code or "")
        if key in seen_counterfactuals:  # the same program twice (e.g. two concepts agreeing): keep the first
            continue
        seen_counterfactuals.add(key)
        rows.append(_row(record.task_id, pair_id, record.concept.value, prompt_format, task, record.code or "",
                         [list(s) for s in record.changed_spans], 1 if record.sites is None else record.sites,
                         record.variant))
    return rows


def _row(task_id: str, pair_id: str, concept: str, prompt_format: str, task: TaskText, program: str,
         spans: list, sites: int, variant: int | None) -> dict[str, Any]:
    # sites: a line without the field (written before the engine counted sites) changed one place
    from procure_trl.dataset.prompt_format import training_example

    return {"task_id": task_id, "pair_id": pair_id, "concept": concept,
            **training_example(prompt_format, task, program, spans), "sites": sites, "variant": variant}


def task_source(task_id: str) -> str:
    """The source of a task, lower-cased, from its id: ``HumanEval/0`` -> ``humaneval``, ``MBPP/2`` -> ``mbpp``
    (``""`` for an id without ``/``). Per-source test sizes are keyed by it."""
    return task_id.split("/", 1)[0].lower() if "/" in task_id else ""


@dataclass
class TaskSplit:
    """Which tasks go to ``train`` and ``test``, and the tasks left out of both with the reason."""

    train: list[str]
    test: list[str]
    left_out: dict[str, str] = field(default_factory=dict)


def _check_size(size: float, name: str) -> None:
    if not 0 <= size <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {size}")


def split_tasks(
    tasks: Sequence[str],
    test_size: float = 0.2,
    seed: int = 0,
    *,
    groups: Sequence[Sequence[str]] | None = None,
    test_sizes: Mapping[str, float] | None = None,
) -> TaskSplit:
    """Split ``tasks`` into ``train``/``test`` by group, each group whole on one side.

    Args:
        tasks: the task ids.
        test_size: fraction of the tasks of each source (:func:`task_source`) that go to ``test``; ``1`` puts
            every task in ``test``, ``0`` every task in ``train``.
        seed: seed of the shuffle of the groups (``random.Random(seed)`` over the groups in sorted order).
        groups: near-duplicate groups (:func:`procure_trl.dataset.near_duplicates.near_duplicate_groups`); ``None`` or a
            task in no group: the task is a group of its own.
        test_sizes: per-source test size overriding ``test_size`` (``{"mbpp": 1.0}``: all of MBPP in ``test``).

    A group with a task of a source whose test size is 1 goes to ``test``; its tasks of sources whose test size is
    0 are left out (they near-duplicate a test task but may not be tested). A group with a task of a source whose
    test size is 0 goes to ``train``. The other groups are shuffled and go to ``test`` while no source would exceed
    ``round(size * n)`` test tasks (at least one task on each side when ``0 < size < 1`` and the source has two
    tasks or more), so each source keeps its proportion up to the groups that do not fit.
    """
    _check_size(test_size, "test_size")
    sizes = dict(test_sizes or {})
    for name, size in sizes.items():
        _check_size(size, f"test size of {name!r}")
    size_of = {task: sizes.get(task_source(task), test_size) for task in tasks}
    grouped = {t for g in groups or () for t in g}
    all_groups = [sorted(g) for g in groups or () if g] + [[t] for t in tasks if t not in grouped]
    all_groups = sorted((g for g in all_groups if all(t in size_of for t in g)), key=lambda g: g[0])
    split = TaskSplit([], [])
    free = []
    for group in all_groups:
        if any(size_of[t] == 1 for t in group):
            tested = [t for t in group if size_of[t] > 0]
            split.test += tested
            for task in group:
                if size_of[task] == 0:
                    split.left_out[task] = f"near duplicate of test task {tested[0]} (its source is all train)"
        elif any(size_of[t] == 0 for t in group):
            split.train += group
        else:
            free.append(group)
    random.Random(seed).shuffle(free)
    kept = Counter(task_source(t) for t in tasks if t not in split.left_out)
    in_test = Counter(task_source(t) for t in split.test)
    target = {}
    for source, n in kept.items():
        size = sizes.get(source, test_size)
        target[source] = round(size * n)
        if 0 < size < 1 and n > 1:
            target[source] = min(max(target[source], 1), n - 1)
    for group in free:
        counts = Counter(task_source(t) for t in group)
        if all(in_test[s] + k <= target[s] for s, k in counts.items()):
            split.test += group
            in_test.update(counts)
        else:
            split.train += group
    return split


def split_by_task(
    rows: Sequence[Mapping[str, Any]],
    test_size: float = 0.2,
    seed: int = 0,
    *,
    groups: Sequence[Sequence[str]] | None = None,
    test_sizes: Mapping[str, float] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Split rows into ``train``/``test`` by task (:func:`split_tasks`): every row of a task lands in the same
    split, every task of a near-duplicate group too; rows of tasks left out are dropped.

    Without groups and with one source this is the plain task split: the sorted tasks shuffled with
    ``random.Random(seed)``, the first ``round(test_size * n_tasks)`` to test. ``test_size=0`` gives no ``test``,
    ``test_size=1`` an empty ``train``.
    """
    tasks = sorted({row["task_id"] for row in rows})
    return rows_of_split(rows, split_tasks(tasks, test_size, seed, groups=groups, test_sizes=test_sizes))


def rows_of_split(rows: Sequence[Mapping[str, Any]], split: TaskSplit) -> dict[str, list[dict[str, Any]]]:
    """The rows of each side of ``split``: ``train`` always (maybe empty: configs leave empty splits out), ``test``
    when it has rows."""
    side = {**{t: "train" for t in split.train}, **{t: "test" for t in split.test}}
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for row in rows:
        if row["task_id"] in side:
            splits[side[row["task_id"]]].append(dict(row))
    return {name: part for name, part in splits.items() if part or name == "train"}


def task_texts(
    rows: Iterable[Mapping[str, Any]], statements: Mapping[str, str] | None = None
) -> dict[str, ComparableTask]:
    """Per task, what near-duplicate grouping compares: the statement (from ``statements``, else the words of the
    row's prompt) and the task's first original program, in either prompt format."""
    from procure_trl.dataset.near_duplicates import ComparableTask
    from procure_trl.dataset.prompt_format import row_program

    statements = statements or {}
    out: dict[str, ComparableTask] = {}
    for row in rows:
        if row["concept"] == ORIGINAL and row["task_id"] not in out:
            prompt = row["prompt"]
            words = " ".join(m["content"] for m in prompt) if isinstance(prompt, list) else prompt
            out[row["task_id"]] = ComparableTask(statements.get(row["task_id"], words), row_program(row)[0])
    return out


def config_rows(rows: Sequence[Mapping[str, Any]], config: str) -> list[dict[str, Any]]:
    """The rows of one config: ``all``, or a concept's counterfactuals plus the originals they pair with."""
    if config == "all":
        return [dict(r) for r in rows]
    concept = config if config in _user_concepts(rows) else Concept.parse(config).value
    pairs = {r["pair_id"] for r in rows if r["concept"] == concept}
    return [dict(r) for r in rows if r["concept"] == concept or (r["concept"] == ORIGINAL and r["pair_id"] in pairs)]


def add_token_columns(
    rows: Sequence[Mapping[str, Any]], tokenizer: Any, *, chat_template: bool = False, progress: bool = True
) -> list[dict[str, Any]]:
    """Add ``input_ids``, ``completion_mask`` and ``perturbation_mask`` as the concept-aware trainer tokenizes the
    rows, and the tokenizer that made them (``tokenizer_name``, ``tokenizer_fingerprint``: the trainer refuses the
    ids with another tokenizer).

    Uses :func:`procure_trl.dataset.masks.prompt_completion_mask` for string rows (EOS appended, as TRL does;
    ``chat_template``: rendered as a user/assistant conversation) and
    :func:`procure_trl.dataset.masks.conversation_mask` for chat rows, so the stored tokens are exactly the trainer's.
    """
    from tqdm.auto import tqdm

    from procure_trl.dataset.masks import conversation_mask

    identity = {
        "tokenizer_name": str(tokenizer.name_or_path), "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)
    }
    out = []
    for row in tqdm(rows, desc="tokenizing", disable=not progress):
        if isinstance(row["prompt"], list):  # a chat row: its spans index the assistant message
            prompt, completion = row["prompt"], row["completion"]
            tokens = conversation_mask(prompt + completion, len(prompt), row["changed_spans"], tokenizer,
                                       prompt_messages=len(prompt))
        else:
            tokens = prompt_completion_mask(row["prompt"], row["completion"], row["changed_spans"], tokenizer,
                                            chat_template=chat_template)
        out.append({**row, **tokens, **identity})
    return out


def dataset_features(tokenized: bool = False, prompt_format: str = "completion") -> Features:
    """The ``datasets.Features`` of the schema (with the token columns when ``tokenized``); ``prompt`` and
    ``completion`` are strings, or lists of ``{"role", "content"}`` messages in the ``chat`` format."""
    from datasets import Features, List, Value

    text: Any = Value("string")
    if prompt_format == "chat":
        text = List({"role": Value("string"), "content": Value("string")})
    columns: dict[str, Any] = {
        "task_id": Value("string"),
        "pair_id": Value("string"),
        "concept": Value("string"),
        "prompt": text,
        "completion": text,
        "changed_spans": List(List(Value("int32"), length=2)),
        "sites": Value("int32"),
        "variant": Value("int32"),
    }
    if tokenized:
        columns["input_ids"] = List(Value("int32"))
        columns["completion_mask"] = List(Value("int8"))
        columns["perturbation_mask"] = List(Value("int8"))
        for name in TOKENIZER_COLUMNS:
            columns[name] = Value("string")
    return Features(columns)


@dataclass
class BuiltDataset:
    """The DatasetDict of every non-empty config, and the per-config, per-split row counts."""

    configs: dict[str, DatasetDict]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def build_dataset_dict(
    splits: Mapping[str, Sequence[Mapping[str, Any]]], *, tokenized: bool = False
) -> BuiltDataset:
    """One ``DatasetDict`` per config from task-level splits; configs without rows are left out."""
    from datasets import Dataset, DatasetDict

    from procure_trl.dataset.prompt_format import rows_format

    prompt_format = rows_format(row for rows in splits.values() for row in rows) or "completion"
    features = dataset_features(tokenized, prompt_format)
    columns = list(features)
    configs: dict[str, DatasetDict] = {}
    counts: dict[str, dict[str, int]] = {}
    for config in config_names(row for rows in splits.values() for row in rows):
        parts = {}
        for split, rows in splits.items():
            # A user-defined concept whose rows all fell in the other split has none here.
            present = config in CONFIG_NAMES or any(r["concept"] == config for r in rows)
            selected = config_rows(rows, config) if present else []
            if selected:
                parts[split] = Dataset.from_list([_schema_row(r, columns) for r in selected], features=features)
        if parts:
            configs[config] = DatasetDict(parts)
            counts[config] = {split: len(ds) for split, ds in parts.items()}
    return BuiltDataset(configs, counts)


#: Columns a row may lack (rows made before they existed): they are written as null.
_OPTIONAL_COLUMNS = ("sites", "variant")


def _schema_row(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    return {c: row.get(c) if c in _OPTIONAL_COLUMNS else row[c] for c in columns}


def concept_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Number of rows per ``concept`` value, ``original`` first, then the built-in concepts in registry order,
    then the user-defined concepts the rows hold."""
    rows = list(rows)
    counter = Counter(r["concept"] for r in rows)
    order = [ORIGINAL, *(c.value for c in Concept), *_user_concepts(rows)]
    return {name: counter.get(name, 0) for name in order}


def records_from_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[CounterfactualRecord]]:
    """The tasks of dataset rows, in first-seen order, and one valid record per counterfactual row.

    The inverse of :func:`build_rows`: each counterfactual row is paired with the ``original`` row of its
    ``pair_id`` (the program it rewrites); rows of either prompt format give the whole programs
    (:func:`procure_trl.dataset.prompt_format.row_program`).

    Raises:
        ValueError: a counterfactual row whose original is not among the rows (the rows were filtered apart).
    """
    rows = list(rows)
    originals = {r["pair_id"]: row_program(r)[0] for r in rows if r["concept"] == ORIGINAL}
    tasks = list(dict.fromkeys(r["task_id"] for r in rows))
    records = []
    for row in rows:
        if row["concept"] == ORIGINAL:
            continue
        if row["pair_id"] not in originals:
            raise UserError(
                f"row {row['task_id']} / {row['concept']}: no 'original' row with pair_id {row['pair_id']!r}; "
                "load a whole config split of the dataset (each config holds the originals its rows pair with)"
            )
        code, offset = row_program(row)  # rows hold a program split in their format; records hold it whole
        records.append(
            CounterfactualRecord(
                task_id=row["task_id"], concept=row["concept"], status=VALID, original=originals[row["pair_id"]],
                code=code, changed_spans=tuple((s + offset, e + offset) for s, e in row["changed_spans"]),
                sites=row.get("sites"), variant=row.get("variant"),  # absent in datasets built before they were kept
                # a concept that is not built in was made by user-defined rules: read it back as such
                generator="rule" if row["concept"] in Concept._value2member_map_ else AST_GREP,
            )
        )
    return tasks, records


def _names_a_local_path(name: str) -> bool:
    """A dataset name that can only be a path: it starts like one, or its first folder exists here."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        return True
    head = name.split("/", 1)[0]
    return "/" in name and os.path.isdir(head)


def check_dataset_name(name: str) -> None:
    """Refuse a dataset name that is a local path (``outputs/procure-counterfactuals``, ``./data``) to a folder that
    does not exist, before ``datasets`` would look it up on the Hub and report a connection error instead.

    Raises:
        FileNotFoundError: naming the path and the fix.
    """
    path = os.path.expanduser(name)
    if not os.path.exists(path) and _names_a_local_path(name):
        raise MissingInputError(
            f"dataset folder {name!r} does not exist ({os.path.abspath(path)}); build it first (`procure build "
            "--output-dir ...`) or fix the path"
        )


def load_dataset_dict(name: str, config: str | None = "all", *, streaming: bool = False) -> Any:
    """All splits of a dataset: a folder written by the dataset builder (Parquet + card), a ``save_to_disk``
    folder, or a Hub id (``streaming`` applies to the first and last).

    Raises:
        FileNotFoundError: ``name`` is a local path that does not exist (never reported as a Hub error).
        ValueError: no such config, or a Hub id that cannot be loaded (one line).
    """
    from datasets import load_dataset, load_from_disk

    path = os.path.expanduser(name)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_dict.json")):
        return load_from_disk(path)
    check_dataset_name(name)
    local = os.path.isdir(path)
    if not local:
        require_local_or_hub(name, "dataset", f"dataset {name!r}")  # offline without a cached copy: one line now
        require_hub(f"dataset {name!r}", "build it locally with `procure build --output-dir DIR` and pass DIR")
    try:
        # A local folder is read afresh: datasets' cache key of a folder ignores its files' contents, so a folder
        # rebuilt in place would otherwise come back with its old rows.
        return load_dataset(path if local else name, name=config, streaming=streaming,
                            download_mode="force_redownload" if local else None)
    except Exception as err:  # datasets raises many types (connection, offline, not found, bad config)
        where = "local folder" if local else "no such local folder; Hub id"
        raise UserError(f"dataset {name!r} ({where}), config {config!r}: {first_line(err)}") from err


def select_split(dataset: Any, name: str, split: str, config: str | None = None) -> Any:
    """``dataset[split]``, or a one-line ValueError naming ``name`` (and ``config``) and the splits there are."""
    if split not in dataset:
        which = f"dataset {name!r}" + (f" config {config!r}" if config is not None else "")
        raise UserError(f"{which} has no split {split!r} (splits: {', '.join(dataset)})")
    return dataset[split]


def card_prompt_format(name: str) -> str | None:
    """The ``prompt_format`` a dataset folder's card records (``procure build`` writes it), or ``None``."""
    from procure_trl.dataset.prompt_format import PROMPT_FORMATS

    readme = os.path.join(os.path.expanduser(name), "README.md")
    if not os.path.isfile(readme):
        return None
    import yaml

    with open(readme, encoding="utf-8") as handle:
        text = handle.read()
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return None
    data = yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}
    fmt = data.get("prompt_format") if isinstance(data, dict) else None
    return fmt if fmt in PROMPT_FORMATS else None


def dataset_prompt_format(name: str, config: str | None = "all", split: str = "test") -> str | None:
    """The prompt format a dataset was built in (:mod:`procure_trl.dataset.prompt_format`): the one its card records,
    else the format of its rows (``None`` when the split does not exist)."""
    from procure_trl.dataset.prompt_format import rows_format

    recorded = card_prompt_format(name)
    if recorded:
        return recorded
    try:
        return rows_format(load_dataset_split(name, config, split))
    except ValueError:  # no such split: its rows tell nothing here
        return None


def load_dataset_split(name: str, config: str | None = "all", split: str = "train") -> Any:
    """One split of a dataset loaded by :func:`load_dataset_dict`.

    Raises:
        FileNotFoundError: ``name`` is a local path that does not exist (never reported as a Hub error).
        ValueError: no such config or split (naming the ones there are), or a Hub id that cannot be loaded.
    """
    return select_split(load_dataset_dict(name, config), name, split, config)
