"""Settings of ``procure perturb --dataset``: one dataclass, whose fields are also the command's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from procure_trl.concepts import Concept
from procure_trl.errors import UserError
from procure_trl.validation.pipeline import ValidationConfig

ENGINES = ("datasets", "ray")
#: Fields set from the rule engine's options (GenerationConfig) and ``procure perturb``'s own --split/--limit.
SHARED_WITH_GENERATION = ("concepts", "seed", "timeout", "split", "limit")


@dataclass
class DatasetPerturbConfig:
    r"""How a Hugging Face dataset is turned into a counterfactual dataset of the same format.

    Parameters:
        dataset (`str`):
            Hub id, local folder, or Parquet/JSONL file(s) to read.
        output_dir (`str`):
            Where the output dataset (Parquet shards + README card) is written.
        dataset_config (`str`, *optional*):
            The dataset's config (subset) name.
        split (`str`, defaults to `"train"`):
            The split to read; the output has one split of the same name.
        engine (`str`, defaults to `"datasets"`):
            `datasets` (`Dataset.map` on this machine) or `ray` (Ray Data).
        num_proc (`int`, defaults to `1`):
            Processes (`datasets`) or Ray workers (`ray`) running the transform.
        batch_size (`int`, defaults to `64`):
            Input rows per call of the per-batch transform.
        streaming (`bool`, defaults to `False`):
            Read the input as an `IterableDataset` (one process; memory does not depend on its size).
        code_column (`str`, *optional*):
            Column holding the code; detected when not given.
        prompt_column (`str`, *optional*):
            Prompt column (kept as is); detected when not given.
        tests_column (`str`, *optional*):
            Column of Python tests run against each row's program; detected when not given.
        concepts (`list[Concept]`, defaults to all five concepts):
            The perturbations to apply, in output order.
        seed (`int`, defaults to `0`):
            Base seed; each program and concept derive their own from it and the row's content.
        timeout (`float`, defaults to `ValidationConfig.timeout`):
            Seconds for one program's tests.
        test_workers (`int`, defaults to `1`):
            Executor processes per transform process (rows with tests only).
        limit (`int`, *optional*):
            Only the first N rows.
    """

    dataset: str = field(default="", metadata={"help": "Hub id, local folder, or a Parquet/JSONL file to read "
                                                       "(instead of INPUT.jsonl or --benchmark)",
                                               "metavar": "ID_OR_PATH"})
    output_dir: str = field(default="", metadata={"metavar": "DIR",
                                                  "help": "folder for the output dataset (Parquet shards + README "
                                                          "card) that datasets.load_dataset(DIR) reads"})
    dataset_config: str | None = field(default=None, metadata={"help": "the dataset's config (subset) name"})
    split: str = field(default="train", metadata={"help": "split to read; the output has one split of that name"})
    engine: Literal["datasets", "ray"] = field(default="datasets", metadata={
        "help": "datasets: Dataset.map on this machine; ray: Ray Data (pip install procure_trl[ray]), "
                "local or a cluster"})
    num_proc: int = field(default=1, metadata={"help": "processes (datasets) or Ray workers (ray) that run the "
                                                       "transform, each with its own test executor"})
    batch_size: int = field(default=64, metadata={"help": "input rows per call of the per-batch transform"})
    streaming: bool = field(default=False, metadata={"help": "read the input as a stream (datasets engine, one "
                                                             "process): memory does not depend on the input size"})
    code_column: str | None = field(default=None, metadata={
        "help": "column holding the code (a string, or a list of chat messages); default: messages, completion, "
                "code, solution, ... whichever exists"})
    prompt_column: str | None = field(default=None, metadata={"help": "prompt column (kept as is); default: "
                                                                      "prompt, instruction, question, ..."})
    tests_column: str | None = field(default=None, metadata={
        "help": "column of Python tests (a string or a list of assert lines) run against each row's program; "
                "default: tests or test_list when present; rows without tests get static validation only"})
    concepts: list = field(default_factory=lambda: list(Concept), metadata={
        "help": "comma-separated concepts to apply (default: all five)"})
    seed: int = field(default=0, metadata={"help": "base seed; each program and concept derive theirs from it"})
    timeout: float = field(
        default=ValidationConfig.timeout, metadata={"help": "seconds allowed for one program's tests"}
    )
    test_workers: int = field(default=1, metadata={"help": "test executor processes per transform process"})
    limit: int | None = field(default=None, metadata={"help": "only the first N rows"})

    def __post_init__(self) -> None:
        self.concepts = [Concept.parse(c) for c in self.concepts]
        if self.engine not in ENGINES:
            raise UserError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        for name in ("num_proc", "batch_size", "test_workers"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.streaming and self.engine != "datasets":
            raise UserError("streaming applies to the datasets engine; Ray Data reads its input in blocks already")
