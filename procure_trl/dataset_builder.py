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
the card text is rendered (:mod:`procure_trl.dataset_card`) *on top of the card already on the Hub* (a fresh
card would wipe the YAML of the configs pushed before), and the row counts on the Hub are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from procure_trl.counterfactual_dataset import (
    BuiltDataset,
    add_token_columns,
    build_dataset_dict,
    build_rows,
    split_by_task,
)
from procure_trl.dataset_card import card_variables, render_card
from procure_trl.errors import UserError, did_you_mean
from procure_trl.prompt_format import TaskText, default_format
from procure_trl.records import CounterfactualRecord, read_records

__all__ = ["BuildConfig", "build_counterfactual_dataset", "load_tasks", "run_engine", "write_local", "push"]


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
            Fraction of *tasks* in the `test` split (0 for train only).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the task split and of the engine run.
        tokenizer (`str`, *optional*):
            Name or path of a fast tokenizer: adds `input_ids`, `completion_mask` and `perturbation_mask`.
        prompt_format (`str`, *optional*, defaults to `"auto"`):
            `completion` (the prompt is the program start the evaluation gives the model, the completion the rest
            of the program: base models) or `chat` (conversational rows: user = statement and instruction,
            assistant = the program: instruct models); see `procure_trl.prompt_format`. `auto`: `chat` when
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
    """

    benchmarks: str = field(default="humaneval,mbpp", metadata={"help": "Comma-separated benchmarks (statements and, without --input-jsonl, programs)."})
    input_jsonl: str | None = field(default=None, metadata={"help": "Comma-separated engine JSONL files; unset = run `procure perturb`."})
    problems: str | None = field(default=None, metadata={"help": "Problems JSONL giving statements for other tasks."})
    output_dir: str = field(default="outputs/procure-counterfactuals", metadata={"help": "Local output directory."})
    test_size: float = field(default=0.2, metadata={"help": "Fraction of tasks in the test split."})
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
        if not 0 <= self.test_size < 1:
            raise ValueError(f"--test-size must be in [0, 1), got {self.test_size}")
        if self.chat_template:
            if self.prompt_format == "completion":
                raise ValueError("--chat-template asks for --prompt-format chat; drop one of them")
            self.prompt_format = "chat"

    @property
    def benchmark_list(self) -> list[str]:
        return [b.strip() for b in self.benchmarks.split(",") if b.strip()]


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


def run_engine(benchmarks: Sequence[str], work_dir: Path, seed: int, limit: int | None = None) -> list[Path]:
    """Run ``procure perturb`` (its CLI is the contract) on every benchmark; returns the JSONL paths it wrote."""
    paths = []
    work_dir.mkdir(parents=True, exist_ok=True)
    for benchmark in benchmarks:
        path = work_dir / f"{benchmark}_counterfactuals.jsonl"
        command = [sys.executable, "-m", "procure_trl.cli", "perturb", "--benchmark", benchmark,
                   "--output", str(path), "--seed", str(seed)] + (["--limit", str(limit)] if limit else [])
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
# main
# ------------------------------------------------------------------------------------------------


def build_counterfactual_dataset(args: BuildConfig) -> BuiltDataset:
    """Engine output (given, or made by running ``procure perturb``) -> rows -> task-level splits -> Parquet + card
    in ``args.output_dir``, and on the Hub with ``args.push_to_hub``."""
    output_dir = Path(args.output_dir)
    if args.input_jsonl:
        paths: list[str | Path] = [p.strip() for p in args.input_jsonl.split(",") if p.strip()]
    else:
        paths = run_engine(args.benchmark_list, output_dir / "engine", args.seed, args.limit)
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
    rows = build_rows(records, tasks, allow_unvalidated=args.allow_unvalidated, prompt_format=args.prompt_format)
    if tokenizer is not None:
        rows = add_token_columns(rows, tokenizer)
    splits = split_by_task(rows, test_size=args.test_size, seed=args.seed)
    built = build_dataset_dict(splits, tokenized=bool(args.tokenizer))
    variables = card_variables(args, built, rows, records, args.repo_id or "NAMESPACE/NAME")
    card_path = write_local(built, output_dir, variables)
    print(f"wrote {len(rows)} rows ({args.prompt_format} format) in {len(built.configs)} configs to {output_dir} "
          f"(card: {card_path})")
    print(json.dumps(built.counts, indent=1))
    if args.push_to_hub:
        push(built, args, variables)
        print(f"published {args.repo_id}")
    return built

