"""Hub access that cannot succeed fails in seconds with one line naming the fix (no half-minute retries)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from procure_trl.errors import UserError
from procure_trl.hub import hub_unreachable_reason, require_hub, require_hub_push


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    return tmp_path


def test_a_reachable_endpoint_passes(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_unreachable_reason() is None


def test_an_unreachable_hub_is_one_line_naming_the_fix(unreachable_hub):
    started = time.monotonic()
    with pytest.raises(UserError) as err:
        require_hub("MBPP ('google-research-datasets/mbpp')", "set $PROCURE_MBPP_DIR to a folder holding mbpp.jsonl")
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "\n" not in message and "cannot be reached" in message and "$PROCURE_MBPP_DIR" in message


def test_offline_mode_does_not_probe(monkeypatch, unreachable_hub):
    # HF_HUB_OFFLINE: the libraries read their cache (which fails fast), so no probe and no error here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    require_hub("anything", "no fix needed")


@pytest.mark.parametrize("argv", [
    ["perturb", "--benchmark", "mbpp", "--limit", "1", "--output", "{tmp}/out.jsonl"],
    ["evaluate", "--model", "m", "--dataset", "someone/no-such-dataset", "--output-dir", "{tmp}/eval"],
    ["build", "--benchmarks", "humaneval", "--limit", "2", "--output-dir", "{tmp}/built", "--push-to-hub",
     "--repo-id", "me/cf"],
    ["publish-metrics", "--namespace", "me"],
])
def test_commands_that_need_the_hub_stop_within_seconds(argv, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "PROCURE_MBPP_DIR")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_ALLOW_CODE_EVAL="1", HF_TOKEN="hf_test")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "procure_trl.cli", *[a.format(tmp=tmp_path) for a in argv]],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be reached" in lines[0], result.stderr
    assert time.monotonic() - started < 30  # interpreter start-up included; the Hub retries alone took ~24 s
    assert not (tmp_path / "built").exists()  # a push that cannot happen is refused before any work


def test_a_push_is_refused_before_the_work_when_offline_or_without_a_token(monkeypatch, unreachable_hub):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(UserError, match="'me/cf': 127.0.0.1:[0-9]+ cannot be reached"):
        require_hub_push("me/cf")  # the token is there: the unreachable host is what is named
    monkeypatch.delenv("HF_TOKEN")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(unreachable_hub / "token"))  # no stored token either
    with pytest.raises(UserError, match="'me/cf': no Hugging Face token; run `hf auth login` or set HF_TOKEN"):
        require_hub_push("me/cf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="'me/cf': HF_HUB_OFFLINE is set"):
        require_hub_push("me/cf")


def test_publishing_the_metric_spaces_is_refused_before_any_request(monkeypatch, unreachable_hub):
    from huggingface_hub import HfApi, constants

    from procure_trl.metrics.spaces import PublishMetricsConfig, publish_metric_spaces

    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("a request was made"))
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(UserError, match=r"'me/pass_at_k': 127.0.0.1:[0-9]+ cannot be reached.*rerun when the Hub"):
        publish_metric_spaces(PublishMetricsConfig(namespace="me"))
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(unreachable_hub / "token"))
    with pytest.raises(UserError, match="'me/pass_at_k': no Hugging Face token"):
        publish_metric_spaces(PublishMetricsConfig(namespace="me"))


def test_a_dataset_that_only_the_datasets_cache_holds_is_accepted_offline(tmp_path, monkeypatch):
    """`load_dataset` reads its own cache offline even when the downloaded files are gone: so must the check."""
    import shutil

    import datasets
    from hub_server import LoopbackHub
    from huggingface_hub import constants

    from procure_trl.hub import require_local_or_hub

    home = tmp_path / "home"
    push = "from datasets import Dataset; Dataset.from_list([{'a': 1}, {'a': 2}]).push_to_hub('tester/TinyRows')"
    load = "from datasets import load_dataset; print(load_dataset('tester/TinyRows')['train'].to_list())"
    with LoopbackHub() as hub:
        env = {**os.environ, **hub.client_env(HF_HOME=str(home), HF_DATASETS_CACHE=str(home / "datasets"))}
        for code in (push, load):  # pushed, then loaded once online: both caches hold it
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(home / "hub" / "datasets--tester--TinyRows")  # the downloaded files are gone
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", load], env=offline, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "'a': 2" in done.stdout, done.stderr[-2000:]  # datasets still loads it

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(home / "datasets"))
    require_local_or_hub("tester/TinyRows", "dataset", "--dataset")  # accepted: datasets can load it
    with pytest.raises(UserError, match="'tester/OtherRows' is not in the Hugging Face cache"):
        require_local_or_hub("tester/OtherRows", "dataset", "--dataset")
