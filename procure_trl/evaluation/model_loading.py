"""Loading a model to run: a base model and its tokenizer, with an optional PEFT adapter on top.

``procure evaluate`` (the transformers backend) and ``procure attention-report`` both load through
:func:`load_model_and_tokenizer`, so a model or adapter that cannot be loaded reads the same in both. Whether the
adapter was trained on this base model is checked by the callers
(:func:`procure_trl.evaluation.guards.check_adapter_base`) before any weights load.

:func:`model_fingerprint` says *what* a model name stands for (a local folder's files, or a Hub id at its
revision), so that what a model wrote is never credited to another model kept under the same name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from procure_trl.errors import UserError, first_line

__all__ = ["DTYPES", "ModelArguments", "load_model_and_tokenizer", "load_tokenizer", "resolve_model_name",
           "model_fingerprint", "folder_fingerprint"]

DType = Literal["auto", "bfloat16", "float16", "float32"]
#: the weights' dtypes a model can be loaded in (``auto``: the dtype the weights were saved in)
DTYPES: tuple[str, ...] = get_args(DType)


@dataclass
class ModelArguments:
    r"""Which model to run and how to load it: the options ``procure evaluate`` and ``procure attention-report`` share.

    Parameters:
        model (`str`):
            A Hub model id or a local directory with a causal LM and its tokenizer (the base model).
        adapter (`str`, *optional*):
            A PEFT adapter directory applied on top of `model` (e.g. a ProCURE LoRA run).
        dtype (`str`, defaults to `"auto"`):
            Weights' dtype: `auto` (the dtype the weights were saved in), `bfloat16`, `float16` or `float32`.
        device (`str`, *optional*):
            Torch device; `None`: CUDA when available, else CPU.
        trust_remote_code (`bool`, defaults to `False`):
            Allow model repositories with custom code.
        load_in_4bit (`bool`, defaults to `False`):
            Load the base model with the 4-bit quantization `procure train` uses for QLoRA (NF4, double
            quantization, compute in `dtype`, bfloat16 for `auto`), the adapter on top: a 13B model then needs
            about 7 GB instead of 26 GB. Needs bitsandbytes.
        allow_train_overlap (`bool`, defaults to `False`):
            Use an adapter on tasks it was trained on, or near duplicates of them (its `procure_training_data.json`
            lists them); refused by default (:mod:`procure_trl.evaluation.guards`).
        allow_base_mismatch (`bool`, defaults to `False`):
            Load an adapter on another base model than the one in its `adapter_config.json`; refused by default.
    """

    model: str = field(metadata={"help": "Hub model id or local directory of a causal LM (the base model)"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter directory applied on top of --model"})
    dtype: DType = field(default="auto", metadata={
        "help": "weights dtype: auto (as saved), bfloat16, float16, float32"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda when available)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model repositories with custom code"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "load the base model in 4-bit as QLoRA training does (NF4, bitsandbytes)"})
    allow_train_overlap: bool = field(default=False, metadata={
        "help": "use an adapter on tasks it was trained on, or near duplicates of them (refused by default)"})
    allow_base_mismatch: bool = field(default=False, metadata={
        "help": "load an adapter on another base model than its adapter_config.json names (refused by default)"})

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UserError(f"dtype={self.dtype!r}; use one of {', '.join(DTYPES)}")

    def load(self, **kwargs: Any) -> tuple[Any, Any]:
        """``(model, tokenizer)`` as :func:`load_model_and_tokenizer` loads them with these settings (``kwargs``:
        its other arguments, e.g. ``attn_implementation``)."""
        return load_model_and_tokenizer(self.model, self.adapter, dtype=self.dtype, device=self.device,
                                        trust_remote_code=self.trust_remote_code, load_in_4bit=self.load_in_4bit,
                                        **kwargs)

#: Files up to this size (configs, tokenizers) are hashed whole; larger ones (weights) by size, mtime and a
#: hash of their first and last :data:`EDGE_BYTES`, which keeps a multi-GB model's fingerprint to milliseconds.
WHOLE_FILE_LIMIT = 8 * 2**20
EDGE_BYTES = 2**20


def resolve_model_name(name: str) -> str:
    """``name`` as one spelling per model: a local folder as its absolute real path (``~`` expanded, links and
    ``..`` resolved), so that ``outputs/m``, ``./outputs/m/`` and ``/abs/outputs/m`` compare equal; a Hub id
    (anything that is not an existing folder) unchanged."""
    path = os.path.expanduser(name)
    return os.path.realpath(path) if os.path.isdir(path) else name


def _file_digest(path: str, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= WHOLE_FILE_LIMIT:
            digest.update(handle.read())
        else:
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(-EDGE_BYTES, os.SEEK_END)
            digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


def folder_fingerprint(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{file name: {"size", "sha256"[, "mtime_ns"]}}`` for the files a model or adapter folder loads from.

    Every file at the top of the folder counts (configs, tokenizer files, weights, custom code), except hidden
    files and Markdown (model cards); subfolders (a training run's ``checkpoint-*``) are not loaded and do not
    count. Files up to :data:`WHOLE_FILE_LIMIT` (``config.json``, ``adapter_config.json``, tokenizers) are hashed
    whole. Larger files (weights) are fingerprinted by their size, their modification time (ns) and a hash of
    their first and last MiB: fast for multi-GB weights, and a retrained model, which rewrites its weights,
    always changes the modification time. Links are followed (a Hub cache snapshot links to its blobs).
    """
    files: dict[str, dict[str, Any]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name.lower().endswith(".md") or not entry.is_file():
            continue
        size = entry.stat().st_size
        item: dict[str, Any] = {"size": size, "sha256": _file_digest(entry.path, size)}
        if size > WHOLE_FILE_LIMIT:
            item["mtime_ns"] = entry.stat().st_mtime_ns
        files[entry.name] = item
    return files


def _hub_revision(repo_id: str) -> str | None:
    """The commit a Hub id loads: asked of the Hub when online, else the cached snapshot's; ``None`` when neither
    is known (an id that is not cached, offline)."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    if not constants.HF_HUB_OFFLINE:
        from huggingface_hub import HfApi

        try:
            return HfApi().model_info(repo_id).sha
        except Exception:  # noqa: BLE001 - best effort (no network, gated repo): the cached snapshot is next
            pass
    for filename in ("config.json", "adapter_config.json"):
        try:
            cached = try_to_load_from_cache(repo_id, filename)
        except HFValidationError:  # not a well-formed repo id: nothing to look up
            return None
        if isinstance(cached, str):
            return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    return None


def model_fingerprint(name: str | None) -> dict[str, Any] | None:
    """What ``name`` (a ``--model`` or ``--adapter``) stands for, never only where it is.

    A local folder: :func:`folder_fingerprint` of its files (its path is left out: a copy of the same files is
    the same model). A Hub id: ``{"hub_id", "revision"}``, the revision being the commit that loads
    (:func:`_hub_revision`; ``None`` when it cannot be known offline). ``None`` for no name.
    """
    if name is None:
        return None
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return {"files": folder_fingerprint(path)}
    return {"hub_id": name, "revision": _hub_revision(name)}


def check_model_sources(model: str, adapter: str | None) -> None:
    """Refuse a model or adapter that is neither a folder nor a usable Hub id, before transformers would ask the Hub
    (and answer "Repo id must be in the form ..."): ``--model: no such folder: /abs/path``."""
    from procure_trl.hub import require_local_or_hub

    for what, name in (("model", model), ("adapter", adapter)):
        if name:
            require_local_or_hub(name, "model", f"--{what}")


def load_model_and_tokenizer(
    model: str,
    adapter: str | None = None,
    *,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    prepare: Callable[[Any], None] | None = None,
    load_in_4bit: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``model`` (a local folder or Hub id) with ``adapter`` on top when given, in eval mode
    on ``device`` (``None``: CUDA when available, else CPU).

    ``load_in_4bit`` loads the base model with the quantization QLoRA training uses
    (:func:`procure_trl.training.qlora.default_quantization_config`, compute in ``dtype``, bfloat16 for ``auto``).

    ``prepare`` is called on the base model before the adapter wraps it (e.g. to switch its attention function).

    Raises:
        UserError: the model or adapter cannot be loaded (one line naming it and the fix).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_sources(model, adapter)
    quantized = _quantized_loading(dtype, device) if load_in_4bit else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        # Any: a PeftModel may wrap it below, and transformers types .to() through a decorator mypy misreads
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            model, dtype=quantized.pop("dtype", dtype), attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code, **quantized,
        )
    except (OSError, ValueError) as err:  # not found locally, not on the Hub, offline without a cached copy, bad config
        raise UserError(f"--model {model!r} cannot be loaded: {first_line(err)}; give a local directory with the "
                        "model and its tokenizer, or a Hub id (cached, when HF_HUB_OFFLINE=1)") from err
    if prepare is not None:
        prepare(loaded)
    if adapter:
        from peft import PeftModel

        try:
            loaded = PeftModel.from_pretrained(loaded, adapter)
        except (OSError, ValueError) as err:
            raise UserError(f"--adapter {adapter!r} cannot be loaded on {model!r}: {first_line(err)}; give a PEFT "
                            "adapter directory (adapter_config.json + weights) trained on --model") from err
    if quantized:  # placed by device_map: a quantized model cannot be moved
        return loaded.eval(), tokenizer
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return loaded.to(device).eval(), tokenizer


def _quantized_loading(dtype: str, device: str | None) -> dict[str, Any]:
    """``from_pretrained`` arguments of a 4-bit base model: QLoRA's quantization, on one device.

    Raises:
        UserError: bitsandbytes is missing.
    """
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes, or drop --load-in-4bit")
    from procure_trl.training.qlora import default_quantization_config

    compute = "bfloat16" if dtype in ("auto", None) else dtype
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return {"quantization_config": default_quantization_config(compute), "dtype": getattr(torch, compute),
            "device_map": {"": device}}


def load_tokenizer(model: str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of ``model`` alone (cheap: to render prompts before deciding to load any weights).

    Raises:
        UserError: it cannot be loaded (the same line as :func:`load_model_and_tokenizer`'s).
    """
    from transformers import AutoTokenizer

    check_model_sources(model, None)
    try:
        return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(f"--model {model!r} cannot be loaded: {first_line(err)}; give a local directory with the "
                        "model and its tokenizer, or a Hub id (cached, when HF_HUB_OFFLINE=1)") from err
