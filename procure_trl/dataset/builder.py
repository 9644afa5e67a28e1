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

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from procure_trl.dataset.rows import (
    BuiltDataset,
    TaskSplit,
    add_token_columns,
    build_dataset_dict,
    build_rows,
    problem_statement,
    rows_of_split,
    split_tasks,
    task_source,
    task_texts,
)
from procure_trl.dataset.card import card_variables, render_card
from procure_trl.errors import UserError, did_you_mean
from procure_trl.dataset.prompt_format import TaskText, default_format
from procure_trl.perturb.records import CounterfactualRecord, read_records

__all__ = ["BuildConfig", "build_counterfactual_dataset", "load_tasks", "run_engine", "write_local", "push",
           "parse_test_sizes", "split_without_near_duplicates", "split_summary"]


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
    """

    benchmarks: str = field(default="humaneval,mbpp", metadata={"help": "Comma-separated benchmarks (statements and, without --input-jsonl, programs)."})
    input_jsonl: str | None = field(default=None, metadata={"help": "Comma-separated engine JSONL files; unset = run `procure perturb`."})
    problems: str | None = field(default=None, metadata={"help": "Problems JSONL giving statements for other tasks."})
    output_dir: str = field(default="outputs/procure-counterfactuals", metadata={"help": "Local output directory."})
    test_size: float = field(default=0.2, metadata={"help": "Fraction of each benchmark's tasks in the test split (0 to 1)."})
    test_sizes: str | None = field(default=None, metadata={"help": "Per-benchmark test sizes, e.g. humaneval=0,mbpp=1."})
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
    allow_unvalidated: bool = field(default=False, metadata={"help": "Accept lines from `procure perturb --no-validate`."})
    limit: int | None = field(default=None, metadata={"help": "Engine run only: the first N problems of each benchmark."})
    sites: str = field(default="1", metadata={"help": "Engine run only: places changed at once; 1,2,3 runs it per value."})
    variants: int = field(default=1, metadata={"help": "Engine run only: distinct counterfactuals per (problem, concept)."})

    def __post_init__(self):
        from procure_trl.problems import BENCHMARKS

        for name in self.benchmark_list:  # before any work: a typo must not surface as the engine's failure
            if name not in BENCHMARKS:
                raise UserError(
                    f"--benchmarks: unknown benchmark {name!r}{did_you_mean(name, BENCHMARKS)}; use a comma-separated "
                    f"list of {', '.join(BENCHMARKS)} (statements of other tasks come from --problems FILE.jsonl)"
                )
        if self.push_to_hub and not self.repo_id:
            raise ValueError("--push-to-hub needs --repo-id NAMESPACE/NAME")
        if not 0 <= self.test_size <= 1:
            raise ValueError(f"--test-size must be in [0, 1], got {self.test_size}")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError(f"--near-duplicate-threshold must be in (0, 1], got {self.near_duplicate_threshold}")
        self.test_size_map  # noqa: B018 - parsed now, so a bad --test-sizes fails before any work
        self.site_counts  # noqa: B018 - likewise --sites
        if self.variants < 1:
            raise ValueError(f"--variants must be >= 1, got {self.variants}")
        if self.chat_template:
            if self.prompt_format == "completion":
                raise ValueError("--chat-template asks for --prompt-format chat; drop one of them")
            self.prompt_format = "chat"

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
            raise ValueError(f"--sites must be distinct positive integers, e.g. 1 or 1,2,3; got {self.sites!r}")
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
            raise ValueError(f"--test-sizes: {entry.strip()!r} is not BENCHMARK=SIZE with a size in [0, 1]; "
                             "e.g. --test-sizes humaneval=0,mbpp=1")
        if name in sizes:
            raise ValueError(f"--test-sizes names {name!r} twice; give each benchmark once")
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


def run_engine(benchmarks: Sequence[str], work_dir: Path, seed: int, limit: int | None = None,
               sites: Sequence[int] = (1,), variants: int = 1) -> list[Path]:
    """Run ``procure perturb`` (its CLI is the contract) on every benchmark, once per site count; returns the JSONL
    paths it wrote."""
    paths = []
    work_dir.mkdir(parents=True, exist_ok=True)
    for benchmark, count in ((b, k) for b in benchmarks for k in sites):
        name = benchmark if list(sites) == [1] else f"{benchmark}_sites{count}"
        path = work_dir / f"{name}_counterfactuals.jsonl"
        command = [sys.executable, "-m", "procure_trl.cli", "perturb", "--benchmark", benchmark,
                   "--output", str(path), "--seed", str(seed)] + (["--limit", str(limit)] if limit else [])
        command += (["--sites", str(count)] if count != 1 else []) + (["--variants", str(variants)] if variants > 1 else [])
        print(f"running: {' '.join(command)}", flush=True)
        returncode = subprocess.run(command).returncode
        if returncode:
            raise UserError(
                f"`procure perturb --benchmark {benchmark}` failed with exit status {returncode} (its error is above); "
                "fix that, or build from existing engine output with --input-jsonl"
            )
        paths.append(path)
    return paths


def read_record_files(paths: Sequence[str | Path]) -> list[CounterfactualRecord]:
    return [record for path in paths for record in read_records(path)]


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
                api.delete_folder(config, repo_id=repo_id, repo_type="dataset", commit_message=f"Remove config {config}")
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
    on_hub = {i.get("config_name", "default"): {s["name"]: s["num_examples"] for s in i.get("splits", [])} for i in infos}
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
        raise ValueError(f"--test-sizes names {unknown[0]!r}, but no task comes from it (sources: "
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


def build_counterfactual_dataset(args: BuildConfig) -> BuiltDataset:
    """Engine output (given, or made by running ``procure perturb``) -> rows -> task-level splits -> Parquet + card
    in ``args.output_dir``, and on the Hub with ``args.push_to_hub``."""
    output_dir = Path(args.output_dir)
    if args.input_jsonl:
        paths: list[str | Path] = [p.strip() for p in args.input_jsonl.split(",") if p.strip()]
    else:
        paths = run_engine(args.benchmark_list, output_dir / "engine", args.seed, args.limit, args.site_counts,
                           args.variants)
    records = read_record_files(paths)
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
    variables = card_variables(args, built, rows, records, args.repo_id or "NAMESPACE/NAME",
                               split=split_summary(split, task_texts(rows, statements), args))
    card_path = write_local(built, output_dir, variables)
    print(f"wrote {len(rows)} rows ({args.prompt_format} format) in {len(built.configs)} configs to {output_dir} "
          f"(card: {card_path})")
    print(json.dumps(built.counts, indent=1))
    if args.push_to_hub:
        push(built, args, variables)
        print(f"published {args.repo_id}")
    return built

