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

import pytest
from mbpp_data import use_fixture_rows_if_needed

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
