"""Shared fixtures. Everything runs offline: tiny models and tokenizers are built locally."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Set before any Hugging Face import: tests never reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A datasets cache of the session's own: datasets keys the cache of a local folder by its path, and pytest
# reuses tmp paths across sessions, so a shared cache hands a test the rows an earlier session built there.
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="procure-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

import signal

import pytest
from mbpp_data import use_fixture_rows_if_needed

# A shell starts background jobs (`make test &`, nohup, some CI runners) with SIGINT ignored, and an ignored signal
# stays ignored in every process started from it: Ctrl-C would then never reach the code the interrupt tests
# exercise. The tests run as in a terminal: Python's own SIGINT handler here, the default in the processes started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

use_fixture_rows_if_needed()

# Fails the session if any process the suite started is still alive at the end (see the module).
pytest_plugins = ["plugin_process_guard"]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """Byte-level BPE fast tokenizer, trained in memory."""
    from procure_trl.testing_utils import build_tiny_tokenizer

    return build_tiny_tokenizer("bpe")


@pytest.fixture(scope="session")
def tiny_wordpiece_tokenizer():
    """WordPiece fast tokenizer (drops whitespace: offsets have gaps)."""
    from procure_trl.testing_utils import build_tiny_tokenizer

    return build_tiny_tokenizer("wordpiece")


@pytest.fixture
def tiny_llama(tiny_tokenizer):
    """A fresh 2-layer Llama with random weights, sized to the tiny tokenizer."""
    from procure_trl.testing_utils import build_tiny_llama

    return build_tiny_llama(tiny_tokenizer)


@pytest.fixture
def tiny_recipe(tmp_path, tiny_tokenizer):
    """``write(**fields) -> path``: a CPU LoRA recipe for a tiny Llama (saved under ``tmp_path/tiny``) trained on a
    few original/counterfactual pairs (``tmp_path/pairs.jsonl``); ``fields`` add to or replace its defaults."""
    import json

    import yaml
    from training_ddp_worker import make_rows

    from procure_trl.testing_utils import build_tiny_llama

    model_dir = tmp_path / "tiny"
    build_tiny_llama(tiny_tokenizer).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))

    def write(**fields) -> str:
        recipe = {"dataset_name": str(data), "model_name_or_path": str(model_dir), "dtype": "float32",
                  "use_peft": True, "lora_r": 4, "lora_alpha": 8, "per_device_train_batch_size": 4, "use_cpu": True,
                  "bf16": False, "report_to": "none", "disable_tqdm": True, **fields}
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return str(path)

    return write
