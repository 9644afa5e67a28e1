"""Run the per-batch transform over a whole dataset: ``datasets.map`` on one machine, or Ray Data on a cluster.

:func:`perturb_dataset` reads the input (Hub id, local folder, Parquet or JSONL file), detects its format,
runs :class:`~procure_trl.perturb.scale.transform.CounterfactualBatchTransform` with the chosen engine, writes
Parquet shards under ``output_dir/data`` and a card (``README.md``) that ``datasets.load_dataset(output_dir)``
reads, and returns the counts.

* ``datasets``: ``Dataset.map(batched=True, num_proc=N)``; rows go through Arrow files on disk, so memory
  does not depend on the input size, and a rerun after an interruption reuses the shards datasets
  finished (its cache, keyed by the input and the transform's settings). ``streaming=True`` reads the
  input as an ``IterableDataset`` and writes shards as it goes.
* ``ray``: ``map_batches`` with one actor per worker (each owns its executor) over blocks of about one
  batch; connects to the cluster in ``RAY_ADDRESS`` or starts a local one with ``num_proc`` CPUs, and
  shuts down what it started.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procure_trl.errors import UserError
from procure_trl.perturb.scale.card import DatasetCounts, count_output, write_card
from procure_trl.perturb.scale.config import DatasetPerturbConfig
from procure_trl.perturb.scale.formats import CONVERSATIONAL, DatasetFormat, detect_format
from procure_trl.perturb.scale.transform import CounterfactualBatchTransform

#: Rows per output Parquet file (datasets engine).
ROWS_PER_SHARD = 50_000
#: Rows per Parquet row group: what writing (and later reading) a shard holds in memory at once.
WRITE_BATCH_ROWS = 1_000
_FILE_LOADERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


@dataclass
class PerturbDatasetResult:
    """What :func:`perturb_dataset` wrote."""

    output_dir: Path
    format: DatasetFormat
    counts: DatasetCounts


def _reader_options(loader: str) -> dict[str, Any]:
    """Builder options for a local file. Parquet: no pre-buffering. With it, pyarrow caches the byte ranges of
    every row group it is about to read, so reading holds about the whole file in memory (a 19 MB file of
    80,000 rows: 18 MiB more at the peak than 20,000 rows); without it, one row group at a time."""
    if loader != "parquet":
        return {}
    import pyarrow.dataset as pads

    return {"fragment_scan_options": pads.ParquetFragmentScanOptions(pre_buffer=False)}


def load_input(config: DatasetPerturbConfig):
    """The input split as a ``Dataset`` (or ``IterableDataset`` when streaming); raises ``ValueError`` naming it."""
    from datasets import load_dataset

    from procure_trl.hub import require_local_or_hub

    path = Path(config.dataset)
    try:
        if path.is_file():
            loader = _FILE_LOADERS.get(path.suffix.lower())
            if loader is None:
                raise UserError(f"--dataset {config.dataset!r}: a file must be .parquet, .jsonl or .json")
            dataset = load_dataset(loader, data_files={config.split: str(path)}, split=config.split,
                                   streaming=config.streaming, **_reader_options(loader))
        else:
            # a Hub id offline or out of reach: one line now, not a retrying download that ends in a traceback
            require_local_or_hub(config.dataset, "dataset", "--dataset", probe=True)
            dataset = load_dataset(config.dataset, config.dataset_config, split=config.split,
                                   streaming=config.streaming)
    except UserError:
        raise
    except Exception as err:  # datasets raises many types; all mean "this input cannot be read"
        raise UserError(f"--dataset {config.dataset!r} (config {config.dataset_config!r}, split {config.split!r}) "
                         f"cannot be read: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}; "
                         "pass a Hub id, a local dataset folder, or a Parquet/JSONL file") from None
    if config.limit is not None:
        dataset = dataset.take(config.limit) if config.streaming else dataset.select(range(min(config.limit,
                                                                                              len(dataset))))
    return dataset


def output_features(features, fmt: DatasetFormat):
    """The input's features plus the columns the transform adds."""
    from datasets import Features, List, Value

    columns = dict(features)
    columns.update(pair_id=Value("string"), concept=Value("string"), changed_spans=List(List(Value("int32"))))
    if fmt.kind == CONVERSATIONAL:
        columns["changed_message"] = Value("int32")
    columns.update(tests_run=Value("bool"), outcomes=List(Value("string")))
    return Features(columns)


def _first_row(dataset) -> dict[str, Any] | None:
    return next(iter(dataset.take(1)), None) if hasattr(dataset, "take") else None


def perturb_dataset(config: DatasetPerturbConfig) -> PerturbDatasetResult:
    """Read ``config.dataset``, add the counterfactuals, write ``config.output_dir``; see the module docstring."""
    if not config.output_dir:
        raise UserError("--output-dir is required: the folder the output dataset is written to")
    dataset = load_input(config)
    features = dataset.features
    if features is None:  # a stream of JSON without declared features: resolve them from the first rows
        dataset = dataset._resolve_features()
        features = dataset.features
    fmt = detect_format(list(features), _first_row(dataset), code_column=config.code_column,
                        prompt_column=config.prompt_column, tests_column=config.tests_column)
    out_features = output_features(features, fmt)
    transform = CounterfactualBatchTransform(fmt, config.concepts, seed=config.seed, timeout=config.timeout,
                                             test_workers=config.test_workers)
    output_dir = Path(config.output_dir)
    data_dir = output_dir / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a previous run's shards; the datasets cache keeps the finished work
    data_dir.mkdir(parents=True)
    if config.engine == "ray":
        _run_ray(dataset, transform, out_features, config, data_dir)
    elif config.streaming:
        _run_streaming(dataset, transform, out_features, config, data_dir)
    else:
        _run_datasets(dataset, transform, out_features, config, data_dir)
    counts = count_output(output_dir)
    write_card(output_dir, source=config.dataset, split=config.split, fmt_description=fmt.describe(), counts=counts)
    return PerturbDatasetResult(output_dir, fmt, counts)


def _shard_name(split: str, index: int, total: int) -> str:
    # the name datasets reads the split from (no `configs:` in the card: datasets caches a folder by its
    # name and that YAML, so two outputs in folders of the same name would read as the same dataset)
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def _name_shards(data_dir: Path, split: str) -> None:
    """Rename the Parquet files an engine wrote (in name order) to ``{split}-NNNNN-of-NNNNN.parquet``."""
    files = sorted(data_dir.glob("*.parquet"))
    for index, path in enumerate(files):
        path.rename(data_dir / ("." + _shard_name(split, index, len(files))))
    for path in data_dir.glob(".*.parquet"):
        path.rename(data_dir / path.name[1:])


def _run_datasets(dataset, transform, features, config: DatasetPerturbConfig, data_dir: Path) -> None:
    try:
        mapped = dataset.map(transform, batched=True, batch_size=config.batch_size,
                             num_proc=config.num_proc if config.num_proc > 1 else None,
                             remove_columns=dataset.column_names, features=features, desc="perturbing")
    finally:
        transform.close()
    total = max(1, -(-len(mapped) // ROWS_PER_SHARD))
    for index in range(total):
        shard = mapped.shard(total, index, contiguous=True)
        shard.to_parquet(str(data_dir / _shard_name(config.split, index, total)), batch_size=WRITE_BATCH_ROWS)


def _run_streaming(dataset, transform, features, config: DatasetPerturbConfig, data_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    schema = features.arrow_schema
    mapped = dataset.map(transform, batched=True, batch_size=config.batch_size, remove_columns=list(dataset.features))
    writer, rows_in_file, index = None, 0, 0
    try:
        with tqdm(desc="perturbing (stream)", unit="row") as bar:
            # one row group per WRITE_BATCH_ROWS output rows: the writer keeps every row group's metadata
            # (with min/max statistics of each column) until the file is closed
            for batch in mapped.iter(batch_size=WRITE_BATCH_ROWS):
                if writer is None:
                    writer = pq.ParquetWriter(data_dir / f"part-{index:05d}.parquet", schema)
                table = pa.Table.from_pydict({name: batch[name] for name in schema.names}, schema=schema)
                writer.write_table(table)
                rows_in_file += table.num_rows
                bar.update(table.num_rows)
                if rows_in_file >= ROWS_PER_SHARD:
                    writer.close()
                    writer, rows_in_file, index = None, 0, index + 1
    finally:
        if writer is not None:
            writer.close()
        transform.close()
    _name_shards(data_dir, config.split)


class _RayBatchTransform:
    """The Ray actor: one :class:`CounterfactualBatchTransform` (and executor) per worker, Arrow batches in and out."""

    def __init__(self, transform: CounterfactualBatchTransform, schema) -> None:
        self.transform = transform
        self.schema = schema

    def __call__(self, table):
        import pyarrow as pa

        out = self.transform(table.to_pydict())
        return pa.Table.from_pydict({name: out[name] for name in self.schema.names}, schema=self.schema)

    def __del__(self) -> None:
        self.transform.close()


def _run_ray(dataset, transform, features, config: DatasetPerturbConfig, data_dir: Path) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray Data: pip install 'procure_trl[ray]'") from None
    started = not ray.is_initialized()
    if started:
        # RAY_ADDRESS (set by `ray job submit` or by hand) connects to a cluster; otherwise a local one starts
        import os

        local: dict[str, Any] = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": config.num_proc}
        ray.init(include_dashboard=False, log_to_driver=False, **local)
    try:
        # from_arrow, not from_huggingface: the latter re-loads the dataset by its builder name ("parquet",
        # "json") to look for Hub files, and for a local file that can pick up another cached dataset.
        # Blocks of about one batch each, so that every worker gets work.
        blocks = max(config.num_proc, min(-(-len(dataset) // config.batch_size), 10_000))
        source = ray.data.from_arrow(dataset.with_format("arrow")[:], override_num_blocks=blocks)
        mapped = source.map_batches(_RayBatchTransform, fn_constructor_kwargs={"transform": transform,
                                                                               "schema": features.arrow_schema},
                                    batch_size=config.batch_size, batch_format="pyarrow",
                                    concurrency=config.num_proc, num_cpus=1)
        mapped.write_parquet(str(data_dir))
        _name_shards(data_dir, config.split)
    finally:
        if started:
            ray.shutdown()
