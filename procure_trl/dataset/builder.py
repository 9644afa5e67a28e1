"""Build the ProCURE counterfactual dataset (Parquet + card), and optionally publish it on the Hub.

``procure build`` is the command line of :func:`build_counterfactual_dataset` (``datasets_scripts/
build_counterfactuals.py`` is the same command as a script). One command builds HumanEval + MBPP (it runs
``procure perturb`` on each benchmark first):

    procure build --benchmarks humaneval,mbpp --output-dir outputs/procure-counterfactuals

From existing engine output, with token columns for one tokenizer, and published:

    procure build --input-jsonl outputs/humaneval_counterfactuals.jsonl --benchmarks humaneval \\
        --tokenizer Qwen/Qwen2.5-Coder-1.5B-Instruct --push-to-hub --repo-id me/procure-counterfactuals

The token comes from ``HF_TOKEN`` or the usual ``hf auth login``. Every config is pushed with
``DatasetDict.push_to_hub`` (which keeps the card's ``configs``/``dataset_info`` YAML up to date), then
the card text is rendered (:mod:`procure_trl.dataset.card`) *on top of the card already on the Hub* (a fresh
card would wipe the YAML of the configs pushed before), and the row counts on the Hub are checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from procure_trl.dataset.card import card_variables, render_card
from procure_trl.dataset.mutant_rows import read_mutant_files
from procure_trl.dataset.prompt_format import TaskText, default_format
from procure_trl.dataset.rows import (
    BuiltDataset,
    TaskSplit,
    add_token_columns,
    build_dataset_dict,
    build_rows,
    rows_of_split,
    split_tasks,
    task_source,
    task_texts,
)
from procure_trl.errors import UserError, did_you_mean
from procure_trl.perturb.records import CounterfactualRecord, read_records

__all__ = ["BuildConfig", "build_counterfactual_dataset", "load_tasks", "run_engine", "write_local", "push",
           "parse_test_sizes", "split_without_near_duplicates", "split_summary", "BUILD_RECORD", "build_settings",
           "build_folder_state", "built_with_other_settings"]


@dataclass
class BuildConfig:
    r"""
    What ``procure build`` builds (every field is an option of the command).

    Parameters:
        benchmarks (`str`, *optional*, defaults to `"humaneval,mbpp"`):
            Comma-separated benchmarks (`humaneval`, `mbpp`, `mbpp-sanitized`, `codecontests`). They give the
            problem statements (the `prompt` column) and, without `--input-jsonl`, the programs to perturb.
        input_jsonl (`str`, *optional*):
            Comma-separated engine JSONL files (`procure perturb --output`). When unset, the engine is run on
            every benchmark first.
        problems (`str`, *optional*):
            A problems JSONL (the project's `Problem` format) giving statements for tasks not in `benchmarks`.
        mutants (`str`, *optional*):
            Comma-separated `procure mutate` JSONL files (made from the counterfactuals the dataset is built from):
            their killed mutant pairs become the `mutants` config, one row per pair, linked to the other configs
            by `pair_id` (`procure_trl.dataset.mutant_rows`); the card counts killed and survived pairs per concept
            and mutation kind.
        output_dir (`str`, *optional*, defaults to `"outputs/procure-counterfactuals"`):
            Where the Parquet files (`<config>/<split>-00000-of-00001.parquet`) and `README.md` are written.
        test_size (`float`, *optional*, defaults to `0.2`):
            Fraction of the *tasks* of each benchmark in the `test` split (0: train only; 1: test only, e.g. a
            benchmark held out whole for a generalization test).
        test_sizes (`str`, *optional*):
            Per-benchmark test sizes overriding `test_size`, e.g. `humaneval=0,mbpp=1` (train on all of HumanEval,
            test on all of MBPP). Near duplicates of a test task from a benchmark sized 0 are left out.
        near_duplicate_threshold (`float`, *optional*, defaults to `0.8`):
            Tasks whose statements share at least this Jaccard fraction of their words (or of their content words),
            or whose solutions are equal up to names, are grouped and split together (docs/datasets.md).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the task split and of the engine run.
        tokenizer (`str`, *optional*):
            Name or path of a fast tokenizer: adds `input_ids`, `completion_mask` and `perturbation_mask`.
        prompt_format (`str`, *optional*, defaults to `"auto"`):
            `completion` (the prompt is the program start the evaluation gives the model, the completion the rest
            of the program: base models) or `chat` (conversational rows: user = statement and instruction,
            assistant = the program: instruct models); see `procure_trl.dataset.prompt_format`. `auto`: `chat` when
            `tokenizer` has a chat template, else `completion`.
        chat_template (`bool`, *optional*, defaults to `False`):
            The same as `prompt_format: chat` (kept for older commands).
        push_to_hub (`bool`, *optional*, defaults to `False`):
            Publish every config and the card to the Hub.
        repo_id (`str`, *optional*):
            Hub dataset repository, e.g. `me/procure-counterfactuals`; required with `--push-to-hub`.
        private (`bool`, *optional*, defaults to `False`):
            Create the repository private (ignored when it exists).
        pretty_name (`str`, *optional*, defaults to `"ProCURE counterfactual code pairs"`):
            Title of the dataset card.
        allow_unvalidated (`bool`, *optional*, defaults to `False`):
            Accept `valid` lines the engine did not validate (`procure perturb --no-validate`); the card says so.
        limit (`int`, *optional*):
            When the builder runs the engine: only the first N problems of each benchmark (quick trials).
        sites (`str`, *optional*, defaults to `"1"`):
            When the builder runs the engine: places changed at once (`procure perturb --sites`); comma-separated
            values (`1,2,3`) run the engine once per value, so the dataset holds counterfactuals of every strength.
        variants (`int`, *optional*, defaults to `1`):
            When the builder runs the engine: distinct counterfactuals per (problem, concept) (`procure perturb
            --variants`).
        overwrite (`bool`, *optional*, defaults to `False`):
            Rebuild into an `output_dir` that was built with other settings (or holds files no build recorded):
            the configs, card, settings record and engine output of the earlier build are removed first. Without
            it such a folder is refused; a folder built with the same settings is continued (a failed or
            interrupted build picks up the engine output it finished) and rebuilt.
    """

    benchmarks: str = field(default="humaneval,mbpp", metadata={
        "help": "Comma-separated benchmarks (statements and, without --input-jsonl, programs)."})
    input_jsonl: str | None = field(default=None, metadata={
        "help": "Comma-separated engine JSONL files; unset = run `procure perturb`."})
    problems: str | None = field(default=None, metadata={"help": "Problems JSONL giving statements for other tasks."})
    mutants: str | None = field(default=None, metadata={
        "help": "Comma-separated `procure mutate` JSONL files: their killed pairs become the mutants config.",
        "metavar": "FILE[,FILE]"})
    output_dir: str = field(default="outputs/procure-counterfactuals", metadata={"help": "Local output directory."})
    test_size: float = field(default=0.2, metadata={
        "help": "Fraction of each benchmark's tasks in the test split (0 to 1)."})
    test_sizes: str | None = field(default=None, metadata={
        "help": "Per-benchmark test sizes, e.g. humaneval=0,mbpp=1."})
    near_duplicate_threshold: float = field(default=0.8, metadata={
        "help": "Statement word overlap (Jaccard) at which tasks are grouped and split together."})
    seed: int = field(default=0, metadata={"help": "Seed of the split and of the engine."})
    tokenizer: str | None = field(default=None, metadata={"help": "Fast tokenizer for the optional token columns."})
    prompt_format: Literal["auto", "completion", "chat"] = field(
        default="auto",
        metadata={"help": "completion (base models) or chat (instruct models); auto: chat when --tokenizer has a chat "
                          "template, else completion."})
    chat_template: bool = field(default=False, metadata={"help": "Same as --prompt-format chat."})
    push_to_hub: bool = field(default=False, metadata={"help": "Publish every config and the card on the Hub."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub dataset repository id (with --push-to-hub)."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repository private."})
    pretty_name: str = field(default="ProCURE counterfactual code pairs", metadata={"help": "Card title."})
    allow_unvalidated: bool = field(default=False, metadata={
        "help": "Accept lines from `procure perturb --no-validate`."})
    limit: int | None = field(default=None, metadata={
        "help": "Engine run only: the first N problems of each benchmark."})
    sites: str = field(default="1", metadata={
        "help": "Engine run only: places changed at once; 1,2,3 runs it per value."})
    variants: int = field(default=1, metadata={
        "help": "Engine run only: distinct counterfactuals per (problem, concept)."})
    overwrite: bool = field(default=False, metadata={
        "help": "Rebuild into an output folder built with other settings, removing its earlier configs and engine "
                "output (without it such a folder is refused)."})

    def __post_init__(self):
        from procure_trl.problems import BENCHMARKS

        for name in self.benchmark_list:  # before any work: a typo must not surface as the engine's failure
            if name not in BENCHMARKS:
                raise UserError(
                    f"--benchmarks: unknown benchmark {name!r}{did_you_mean(name, BENCHMARKS)}; use a comma-separated "
                    f"list of {', '.join(BENCHMARKS)} (statements of other tasks come from --problems FILE.jsonl)"
                )
        if self.push_to_hub and not self.repo_id:
            raise UserError("--push-to-hub needs --repo-id NAMESPACE/NAME")
        if not 0 <= self.test_size <= 1:
            raise UserError(f"--test-size must be in [0, 1], got {self.test_size}")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise UserError(f"--near-duplicate-threshold must be in (0, 1], got {self.near_duplicate_threshold}")
        self.test_size_map  # noqa: B018 - parsed now, so a bad --test-sizes fails before any work
        self.site_counts  # noqa: B018 - likewise --sites
        if self.variants < 1:
            raise UserError(f"--variants must be >= 1, got {self.variants}")
        if self.chat_template:
            if self.prompt_format == "completion":
                raise UserError("--chat-template asks for --prompt-format chat; drop one of them")
            self.prompt_format = "chat"

    @property
    def mutant_files(self) -> list[str]:
        return [p.strip() for p in (self.mutants or "").split(",") if p.strip()]

    @property
    def benchmark_list(self) -> list[str]:
        return [b.strip() for b in self.benchmarks.split(",") if b.strip()]

    @property
    def site_counts(self) -> list[int]:
        """``sites`` as a list of distinct positive integers (``"1,2,3"`` -> ``[1, 2, 3]``)."""
        try:
            counts = [int(v) for v in str(self.sites).split(",") if v.strip()]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
            raise UserError(f"--sites must be distinct positive integers, e.g. 1 or 1,2,3; got {self.sites!r}")
        return counts

    @property
    def test_size_map(self) -> dict[str, float]:
        """``test_sizes`` as ``{task source: size}`` (``mbpp-sanitized`` counts as ``mbpp``, its task ids' source)."""
        return parse_test_sizes(self.test_sizes)


def parse_test_sizes(text: str | None) -> dict[str, float]:
    """``"humaneval=0,mbpp=1"`` -> ``{"humaneval": 0.0, "mbpp": 1.0}``, keyed by task source
    (:func:`~procure_trl.dataset.rows.task_source`).

    Raises:
        ValueError: an entry that is not ``NAME=SIZE`` with a size in [0, 1], or a name given twice.
    """
    sizes: dict[str, float] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        name, _, value = entry.partition("=")
        name = name.strip().lower().removesuffix("-sanitized")
        try:
            size = float(value)
        except ValueError:
            size = -1.0
        if not name or not 0 <= size <= 1:
            raise UserError(f"--test-sizes: {entry.strip()!r} is not BENCHMARK=SIZE with a size in [0, 1]; "
                             "e.g. --test-sizes humaneval=0,mbpp=1")
        if name in sizes:
            raise UserError(f"--test-sizes names {name!r} twice; give each benchmark once")
        sizes[name] = size
    return sizes


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------


def load_tasks(benchmarks: Sequence[str], problems_path: str | None = None) -> dict[str, TaskText]:
    """task id -> its texts (program start and statement), from the named benchmarks and an optional problems JSONL."""
    from procure_trl.problems import load_problems

    tasks: dict[str, TaskText] = {}
    sources = list(benchmarks) + ([problems_path] if problems_path else [])
    for source in sources:
        for problem in load_problems(source):
            tasks[problem.task_id] = TaskText.from_problem(problem)
    return tasks


def engine_problems(config: BuildConfig) -> dict[str, list]:
    """benchmark -> the problems the engine perturbs for it (the first ``config.limit`` with ``--limit``)."""
    from procure_trl.problems import load_problems

    try:
        loaded = {name: load_problems(name) for name in config.benchmark_list}
    except RuntimeError as err:  # e.g. the Hub cannot be reached: its one line names the fix
        raise UserError(str(err)) from err
    return {name: problems[: config.limit] if config.limit else problems for name, problems in loaded.items()}


def _engine_config(config: BuildConfig, sites: int):
    from procure_trl.perturb.engine import GenerationConfig

    return GenerationConfig(seed=config.seed, sites=sites, variants=config.variants)


def _engine_path(work_dir: Path, benchmark: str, sites: int, all_sites: Sequence[int]) -> Path:
    name = benchmark if list(all_sites) == [1] else f"{benchmark}_sites{sites}"
    return work_dir / f"{name}_counterfactuals.jsonl"


def run_engine(benchmarks: Sequence[str] | Mapping[str, Sequence], work_dir: Path, seed: int, limit: int | None = None,
               sites: Sequence[int] = (1,), variants: int = 1) -> list[Path]:
    """Run the rule engine (what ``procure perturb --benchmark NAME --output ...`` runs) on every benchmark, once per
    site count, in this process; returns the JSONL paths it wrote.

    ``benchmarks`` are names, or ``{name: problems}`` already loaded (:func:`engine_problems`). An engine output
    already in ``work_dir`` is continued (``procure perturb --resume``): the problems it finished are kept, and its
    run record (``OUT.jsonl.run.json``) must hold the same settings (else ``ValueError`` naming the difference).
    """
    from procure_trl.perturb.engine import format_bad_input, format_summary_table, generate_to_jsonl

    config = BuildConfig(benchmarks=",".join(benchmarks), seed=seed, limit=limit,
                         sites=",".join(map(str, sites)), variants=variants)
    problems = benchmarks if isinstance(benchmarks, Mapping) else engine_problems(config)
    paths = []
    work_dir.mkdir(parents=True, exist_ok=True)
    for benchmark, count in ((b, k) for b in problems for k in sites):
        path = _engine_path(work_dir, benchmark, count, sites)
        resume = path.is_file() and path.stat().st_size > 0
        print(f"perturbing {benchmark}" + (f" (sites {count})" if list(sites) != [1] else "")
              + f" into {path}" + (" (continuing the finished problems there)" if resume else ""), flush=True)
        # the same record as `procure perturb --benchmark NAME --limit N`, so either command can continue the file
        inputs = {"input": benchmark, "split": None, "limit": limit}
        records = generate_to_jsonl(problems[benchmark], path, _engine_config(config, count), resume=resume,
                                    overwrite=not resume, inputs=inputs)
        print(format_summary_table(records))
        bad = format_bad_input(records)
        if bad:
            print(bad)
        paths.append(path)
    return paths


def read_record_files(paths: Sequence[str | Path]) -> list[CounterfactualRecord]:
    return [record for path in paths for record in read_records(path)]


# ------------------------------------------------------------------------------------------------
# the record of what built a folder
# ------------------------------------------------------------------------------------------------

#: The file of a dataset folder that records the settings that built it (``load_dataset`` reads the card's
#: ``configs``, so it never takes this file for data).
BUILD_RECORD = "build.json"
#: BuildConfig fields that say where and how to publish, not which rows are built: another value reuses the folder.
_NOT_CONTENT = ("output_dir", "push_to_hub", "repo_id", "private", "overwrite")


def _file_digest(path: str | Path) -> str:
    """``sha256:<16 hex>`` of a file's bytes (the engine's record uses the same short form)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    return "sha256:" + digest.hexdigest()[:16]


def build_settings(config: BuildConfig, problems: Mapping[str, Sequence] | None = None) -> dict[str, Any]:
    """What decides the rows of a build: the :class:`BuildConfig` values (not where or whether it is published) and
    the fingerprints of its inputs: each ``--input-jsonl`` file and ``--problems`` file, or, when the engine runs,
    the problems it perturbs (as the engine's run record names them). ``problems``: :func:`engine_problems`, when
    already loaded."""
    from procure_trl.perturb.engine import run_settings

    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_CONTENT}
    inputs: dict[str, str] = {}
    if config.input_jsonl:
        for path in (p.strip() for p in config.input_jsonl.split(",") if p.strip()):
            inputs[path] = _file_digest(path)
    else:
        problems = problems if problems is not None else engine_problems(config)
        for benchmark, rows in problems.items():
            inputs[benchmark] = run_settings(rows, _engine_config(config, 1))["problems"]
    if config.problems:
        inputs[config.problems] = _file_digest(config.problems)
    for path in config.mutant_files:
        inputs[path] = _file_digest(path)
    settings["inputs"] = inputs
    return json.loads(json.dumps(settings))  # as a reload gives it back (tuples become lists)


def read_build_record(output_dir: str | Path) -> dict[str, Any] | None:
    """The record of the build in ``output_dir`` (``{"settings": ..., "finished": bool}``), or None."""
    try:
        record = json.loads((Path(output_dir) / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("settings"), dict) else None


def _write_build_record(output_dir: Path, settings: Mapping[str, Any], finished: bool) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".{BUILD_RECORD}.tmp"
    tmp.write_text(json.dumps({"settings": settings, "finished": finished}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(output_dir / BUILD_RECORD)  # never half a record


def built_with_other_settings(output_dir: str | Path, settings: Mapping[str, Any]) -> str | None:
    """``"seed 0 then, 1 now; ..."``: how the build recorded in ``output_dir`` differs from ``settings``, or None
    when it does not (or ``output_dir`` records no build)."""
    from procure_trl.perturb.records import settings_difference

    record = read_build_record(output_dir)
    return None if record is None else settings_difference(record["settings"], settings)


def build_folder_state(output_dir: str | Path, settings: Mapping[str, Any] | None = None) -> str:
    """What ``output_dir`` holds: ``"empty"`` (missing or empty), ``"finished"`` / ``"unfinished"`` (a recorded build
    with ``settings``, finished or not), ``"other"`` (a recorded build with other settings) or ``"unrecorded"``
    (files, but no record of a build).

    Raises:
        UserError: ``output_dir`` is a file.
    """
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file, not a folder; give a folder path (e.g. {folder}.d)")
    if not folder.is_dir() or not any(folder.iterdir()):
        return "empty"
    record = read_build_record(folder)
    if record is None:
        return "unrecorded"
    if settings is not None and built_with_other_settings(folder, settings):
        return "other"
    return "finished" if record.get("finished") else "unfinished"


def _remove_earlier_build(folder: Path) -> None:
    """Remove what a build wrote in ``folder`` (config folders of Parquet shards, the card, the record, the engine
    output), and nothing else: ``--overwrite`` must not take a user's other files with it."""
    for child in folder.iterdir():
        shards = list(child.glob("*-of-*.parquet")) if child.is_dir() else []
        if child.is_dir() and shards and len(shards) == len(list(child.iterdir())):
            shutil.rmtree(child)
        elif child.name == "engine" and child.is_dir() and all(
                p.name.endswith(("_counterfactuals.jsonl", "_counterfactuals.jsonl.run.json"))
                for p in child.iterdir()):
            shutil.rmtree(child)
        elif child.name in ("README.md", BUILD_RECORD):
            child.unlink()


def _prepare_folder(args: BuildConfig, settings: Mapping[str, Any]) -> None:
    """Refuse, continue or clear ``args.output_dir`` (see :attr:`BuildConfig.overwrite`); then record ``settings``
    there as an unfinished build."""
    folder = Path(args.output_dir)
    state = build_folder_state(folder, settings)
    if state == "other" and not args.overwrite:
        raise UserError(f"--output-dir {folder} was built with other settings: "
                        f"{built_with_other_settings(folder, settings)}; pass --overwrite to rebuild it (its earlier "
                        "configs and engine output are removed), or choose another --output-dir")
    if state == "unrecorded" and not args.overwrite:
        raise UserError(f"--output-dir {folder} already holds files and no record of a build ({BUILD_RECORD}); pass "
                        "--overwrite to build there (the configs, card and engine output of an earlier build are "
                        "removed, other files kept), or choose another --output-dir")
    if args.overwrite and state in ("other", "unrecorded", "finished", "unfinished"):
        _remove_earlier_build(folder)
    elif state == "unfinished":
        print(f"continuing the unfinished build in {folder} (same settings)", flush=True)
    elif state == "finished":
        print(f"{folder} was built with the same settings: building it again from the same inputs", flush=True)
    _write_build_record(folder, settings, finished=False)


# ------------------------------------------------------------------------------------------------
# local output
# ------------------------------------------------------------------------------------------------


def write_local(built: BuiltDataset, output_dir: Path, variables: Mapping[str, Any]) -> Path:
    """Parquet shards in the Hub's layout plus a README.md with ``configs`` and ``dataset_info`` YAML."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    output_dir.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, dict] = {}
    infos = DatasetInfosDict()
    for config, dd in built.configs.items():
        splits = SplitDict()
        download = 0
        for split, ds in dd.items():
            path = output_dir / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            download += path.stat().st_size
            splits.add(SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=len(ds)))
        metadata[config] = {"data_files": [{"split": s, "path": f"{config}/{s}-*"} for s in dd]}
        if config == "all":
            metadata[config]["default"] = True
        features = next(iter(dd.values())).features
        infos[config] = DatasetInfo(config_name=config, features=features, splits=splits, download_size=download,
                                    dataset_size=sum(s.num_bytes for s in splits.values()))
    card_data = DatasetCardData()
    MetadataConfigs(metadata).to_dataset_card_data(card_data)
    infos.to_dataset_card_data(card_data)
    card = render_card(card_data, variables)
    card.save(str(output_dir / "README.md"))
    return output_dir / "README.md"


# ------------------------------------------------------------------------------------------------
# Hub
# ------------------------------------------------------------------------------------------------


def push(built: BuiltDataset, args: BuildConfig, variables: Mapping[str, Any]) -> str:
    """Push every config, drop configs left from an earlier build, then update the card; returns the commit."""
    from huggingface_hub import DatasetCard, HfApi

    repo_id = args.repo_id
    assert repo_id
    for config, dd in built.configs.items():
        print(f"pushing config {config!r} ({dict(built.counts[config])})", flush=True)
        dd.push_to_hub(repo_id, config_name=config, private=args.private, set_default=config == "all",
                       commit_message=f"Upload config {config}")
    api = HfApi()
    # Load the card datasets just wrote, edit it, push it: a fresh card would drop the configs YAML.
    card = DatasetCard.load(repo_id, repo_type="dataset")
    stale = [c.get("config_name") for c in card.data.get("configs") or [] if c.get("config_name") not in built.configs]
    if stale:
        print(f"removing configs no longer built: {stale}", flush=True)
        card.data["configs"] = [c for c in card.data["configs"] if c.get("config_name") in built.configs]
        infos = card.data.get("dataset_info")
        if isinstance(infos, list):
            card.data["dataset_info"] = [i for i in infos if i.get("config_name") in built.configs]
        existing = set(api.list_repo_files(repo_id, repo_type="dataset"))
        for config in stale:
            if any(f.startswith(f"{config}/") for f in existing):
                api.delete_folder(config, repo_id=repo_id, repo_type="dataset",
                                  commit_message=f"Remove config {config}")
    new_card = render_card(card.data, variables)
    info = new_card.push_to_hub(repo_id, repo_type="dataset", commit_message="Update dataset card")
    verify_hub_counts(repo_id, built)
    return str(info)


def verify_hub_counts(repo_id: str, built: BuiltDataset) -> None:
    """Check the card on the Hub lists every config with the row counts just pushed (datasets#6271)."""
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(repo_id, repo_type="dataset")
    infos = card.data.get("dataset_info") or []
    infos = infos if isinstance(infos, list) else [infos]
    on_hub = {i.get("config_name", "default"): {s["name"]: s["num_examples"] for s in i.get("splits", [])}
              for i in infos}
    for config, counts in built.counts.items():
        if on_hub.get(config) != counts:
            raise RuntimeError(
                f"after the push, the card on {repo_id} lists {on_hub.get(config)} rows for config {config!r}, "
                f"but {counts} were pushed; re-run the push (or inspect the repository's README.md)"
            )


# ------------------------------------------------------------------------------------------------
# split
# ------------------------------------------------------------------------------------------------


def split_without_near_duplicates(rows: Sequence[Mapping[str, Any]], statements: Mapping[str, str],
                                  args: BuildConfig) -> TaskSplit:
    """The task split of ``rows``: near-duplicate groups (:mod:`procure_trl.dataset.near_duplicates`) kept whole, each
    benchmark's test share as ``args`` asks."""
    from procure_trl.dataset.near_duplicates import near_duplicate_groups

    texts = task_texts(rows, statements)
    unknown = sorted(set(args.test_size_map) - {task_source(t) for t in texts})
    if unknown:
        raise UserError(f"--test-sizes names {unknown[0]!r}, but no task comes from it (sources: "
                         f"{', '.join(sorted({task_source(t) for t in texts}))})")
    groups = near_duplicate_groups(texts, args.near_duplicate_threshold)
    return split_tasks(sorted(texts), args.test_size, args.seed, groups=groups, test_sizes=args.test_size_map)


def split_summary(split: TaskSplit, texts: Mapping[str, Any], args: BuildConfig) -> dict[str, Any]:
    """What the card says about the split: per-source task counts, the largest statement-word overlap between a
    train and a test task, the tasks left out."""
    from procure_trl.dataset.near_duplicates import largest_cross_similarity, statement_words

    words = {task: statement_words(text.statement) for task, text in texts.items()}
    similarity, train_task, test_task = largest_cross_similarity(
        {t: words[t] for t in split.train}, {t: words[t] for t in split.test})
    sources = sorted({task_source(t) for t in [*split.train, *split.test, *split.left_out]})
    per_source = {s: {"train": sum(task_source(t) == s for t in split.train),
                      "test": sum(task_source(t) == s for t in split.test)} for s in sources}
    return {"per_source": per_source, "largest_cross_similarity": similarity, "closest_pair": (train_task, test_task),
            "left_out": dict(split.left_out), "threshold": args.near_duplicate_threshold,
            "test_tasks": len(split.test), "tasks": len(split.train) + len(split.test)}


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def _add_mutants_config(built: BuiltDataset, records: Sequence[CounterfactualRecord],
                        rows: Sequence[dict[str, Any]], split: TaskSplit, source: str) -> None:
    """Add the ``mutants`` config (:mod:`procure_trl.dataset.mutant_rows`) to ``built``, split like the other rows."""
    from datasets import Dataset, DatasetDict

    from procure_trl.dataset.mutant_rows import MUTANTS_CONFIG, mutant_features, mutant_rows

    mutants, left_out = mutant_rows(records, rows, f"--mutants {source}")
    if left_out:
        print(f"--mutants: {left_out} killed pair(s) of tasks not in the dataset left out", flush=True)
    if not mutants:
        raise UserError(f"--mutants {source}: no killed mutant pair of the dataset's tasks; run `procure mutate` on "
                         "the counterfactuals the dataset is built from")
    features = mutant_features()
    parts = {name: Dataset.from_list(part, features=features)
             for name, part in rows_of_split(mutants, split).items() if part}
    built.configs[MUTANTS_CONFIG] = DatasetDict(parts)
    built.counts[MUTANTS_CONFIG] = {name: len(ds) for name, ds in parts.items()}


def build_counterfactual_dataset(args: BuildConfig) -> BuiltDataset:
    """Engine output (given, or made by the rule engine) -> rows -> task-level splits -> Parquet + card in
    ``args.output_dir``, and on the Hub with ``args.push_to_hub``.

    ``args.output_dir`` records the settings that built it (:data:`BUILD_RECORD`, :func:`build_settings`). A folder
    recorded with the same settings is continued (the engine keeps the problems it finished) and rebuilt; one built
    with other settings, or holding files no build recorded, is refused unless ``args.overwrite``.
    """
    output_dir = Path(args.output_dir)
    problems = None if args.input_jsonl else engine_problems(args)
    settings = build_settings(args, problems)  # before anything is written: prompt_format "auto" is resolved below
    _prepare_folder(args, settings)
    if args.input_jsonl:
        paths: Sequence[str | Path] = [p.strip() for p in args.input_jsonl.split(",") if p.strip()]
    else:
        assert problems is not None  # engine_problems ran above: --input-jsonl is not given
        paths = run_engine(problems, output_dir / "engine", args.seed, args.limit, args.site_counts, args.variants)
    records = read_record_files(paths)
    if any(r.mutation for r in records):
        raise UserError("--input-jsonl holds mutant rows (written by `procure mutate`); pass them with --mutants and "
                         "the counterfactuals they were made from with --input-jsonl")
    mutant_records = read_mutant_files(args.mutant_files) if args.mutants else []
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, use_fast=True)
    if args.prompt_format == "auto":
        args.prompt_format = default_format(tokenizer) if tokenizer is not None else "completion"
    if args.prompt_format == "chat" and tokenizer is not None and not tokenizer.chat_template:
        raise UserError(f"--prompt-format chat: the tokenizer {args.tokenizer} has no chat template to tokenize the "
                        "rows with; use --prompt-format completion, or a tokenizer with a chat template")
    tasks = load_tasks(args.benchmark_list, args.problems)
    statements = {task_id: task.statement for task_id, task in tasks.items()}
    rows = build_rows(records, tasks, allow_unvalidated=args.allow_unvalidated, prompt_format=args.prompt_format)
    if tokenizer is not None:
        rows = add_token_columns(rows, tokenizer)
    split = split_without_near_duplicates(rows, statements, args)
    splits = rows_of_split(rows, split)
    built = build_dataset_dict(splits, tokenized=bool(args.tokenizer))
    if args.mutants:
        _add_mutants_config(built, mutant_records, rows, split, args.mutants)
    variables = card_variables(args, built, rows, records, args.repo_id or "NAMESPACE/NAME",
                               split=split_summary(split, task_texts(rows, statements), args),
                               mutants=mutant_records)
    card_path = write_local(built, output_dir, variables)
    _write_build_record(output_dir, settings, finished=True)
    print(f"wrote {len(rows)} rows ({args.prompt_format} format) in {len(built.configs)} configs to {output_dir} "
          f"(card: {card_path})")
    print(json.dumps(built.counts, indent=1))
    if args.push_to_hub:
        from procure_trl.hub import hub_operation

        with hub_operation(f"the push to {args.repo_id}", f"the dataset is built in {output_dir}; rerun the same "
                           "command to push it"):
            push(built, args, variables)
        print(f"published {args.repo_id}")
    return built

