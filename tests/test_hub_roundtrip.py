"""Publishing tested for real: push the built dataset to a loopback Hub over HTTP and load it back by repo id.

Nothing in huggingface_hub or datasets is mocked: the build script and the loader run in subprocesses
whose HF_ENDPOINT points at tests/hub_server.py (huggingface_hub reads it at import time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import LoopbackHub  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "datasets_scripts" / "build_counterfactuals.py"
FIXTURE = ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"

LOADER = r"""
import json, sys
from datasets import get_dataset_config_names, load_dataset
from huggingface_hub import DatasetCard
repo, out_path = sys.argv[1], sys.argv[2]
out = {"configs": sorted(get_dataset_config_names(repo))}
for config in out["configs"]:
    out[config] = {split: ds.to_list() for split, ds in load_dataset(repo, config).items()}
out["card"] = str(DatasetCard.load(repo, repo_type="dataset"))
json.dump(out, open(out_path, "w"))
"""


@pytest.fixture(scope="module")
def hub():
    with LoopbackHub() as server:
        yield server


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from procure_trl.testing_utils import build_tiny_tokenizer

    path = tmp_path_factory.mktemp("tok")
    build_tiny_tokenizer("bpe", add_bos=True).save_pretrained(path)
    return path


def _env(hub, home: Path) -> dict[str, str]:
    # a fresh HF_HOME per client: every load really goes through the server, never a local cache
    env = {**os.environ, **hub.client_env(HF_HOME=str(home), HF_DATASETS_CACHE=str(home / "datasets"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, env, cwd=ROOT):
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args[1]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def _build(hub, tmp_path, name, *extra, input_jsonl=FIXTURE, push=True):
    out = tmp_path / name
    args = [sys.executable, str(SCRIPT), "--input_jsonl", str(input_jsonl), "--benchmarks", "humaneval,mbpp",
            "--output_dir", str(out), "--test_size", "0.34", *extra]
    if push:
        args += ["--push_to_hub", "--repo_id", "tester/procure-cf"]
    _run(args, _env(hub, tmp_path / f"home-{name}"))
    return out


def _load_from_hub(hub, tmp_path, name, repo_id="tester/procure-cf", env_extra=None):
    out_path = tmp_path / f"{name}.json"
    env = _env(hub, tmp_path / f"home-load-{name}")
    env.update(env_extra or {})
    _run([sys.executable, "-c", LOADER, repo_id, str(out_path)], env)
    return json.loads(out_path.read_text())


def _local(out_dir: Path) -> dict:
    from datasets import load_dataset

    card = (out_dir / "README.md").read_text()
    configs = [c["config_name"] for c in yaml.safe_load(card.split("---")[1])["configs"]]
    return {c: {split: ds.to_list() for split, ds in load_dataset(str(out_dir), c).items()} for c in configs}


def _front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def _body(card: str) -> str:
    return card.split("---\n", 2)[2]


@pytest.mark.slow
def test_round_trip_every_config_row_mask_and_card_of_a_private_repo(hub, tmp_path, tokenizer_dir):
    out_dir = _build(hub, tmp_path, "first", "--tokenizer", str(tokenizer_dir), "--private")
    local = _local(out_dir)
    # private: anonymous clients are told the repository does not exist ...
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{hub.url}/api/datasets/tester/procure-cf")
    assert info.value.code == 404 and info.value.headers["X-Error-Code"] == "RepoNotFound"
    # ... and the loader, with the token from HF_TOKEN, gets everything back
    remote = _load_from_hub(hub, tmp_path, "first")

    assert sorted(local) == remote["configs"] == ["all", "name_random", "name_shuffle"]
    for config, splits in local.items():
        assert remote[config].keys() == splits.keys(), config
        for split, rows in splits.items():
            assert remote[config][split] == rows, f"{config}/{split} differs after the round trip"
            for row in rows:  # the masks made it, aligned with the tokens
                assert len(row["perturbation_mask"]) == len(row["input_ids"]) == len(row["completion_mask"])
                assert (sum(row["perturbation_mask"]) > 0) == (row["concept"] != "original")

    # the card: what the client loads is what the server holds, with our body and the configs YAML
    server_card = hub.files("tester/procure-cf")["README.md"].decode()
    assert remote["card"] == server_card
    local_card = (out_dir / "README.md").read_text()
    assert _body(server_card) == _body(local_card).replace("NAMESPACE/NAME", "tester/procure-cf")
    meta = _front_matter(server_card)
    assert [c["config_name"] for c in meta["configs"]] == ["all", "name_random", "name_shuffle"]
    assert next(c for c in meta["configs"] if c["config_name"] == "all").get("default") is True
    counts = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in meta["dataset_info"]}
    assert counts == {c: {s: len(r) for s, r in splits.items()} for c, splits in local.items()}
    assert sorted(meta["license"]) == ["cc-by-4.0", "mit"]
    assert str(tokenizer_dir) in server_card and "perturbation_mask" in server_card


@pytest.mark.slow
def test_pushing_again_updates_instead_of_duplicating(hub, tmp_path):
    # Depends on nothing pushed before: the first push here creates or updates the repository.
    _build(hub, tmp_path, "a", "--seed", "0")
    files_before = set(hub.files("tester/procure-cf"))
    commits_before = len(hub.history("tester/procure-cf"))

    # Rebuild from fewer engine lines (name_shuffle gone) with another split seed, push again.
    reduced = tmp_path / "reduced.jsonl"
    lines = [line for line in FIXTURE.read_text().splitlines() if json.loads(line)["concept"] != "name_shuffle"]
    reduced.write_text("\n".join(lines) + "\n")
    out_dir = _build(hub, tmp_path, "b", "--seed", "3", input_jsonl=reduced)

    files_after = set(hub.files("tester/procure-cf"))
    assert not any(f.startswith("name_shuffle/") for f in files_after), "the dropped config's shards remain"
    assert files_after <= files_before | {f for f in files_after if f.startswith(("all/", "name_random/"))}
    parquet = sorted(f for f in files_after if f.endswith(".parquet"))
    assert len(parquet) == len(set(parquet)) and all(f.count("/") == 1 for f in parquet)
    assert len(hub.history("tester/procure-cf")) > commits_before

    remote = _load_from_hub(hub, tmp_path, "second")
    local = _local(out_dir)
    assert remote["configs"] == sorted(local) == ["all", "name_random"]
    for config in local:
        assert remote[config] == local[config]
    meta = _front_matter(remote["card"])
    assert [c["config_name"] for c in meta["configs"]] == ["all", "name_random"]  # no duplicate, no stale entry
    assert [i["config_name"] for i in meta["dataset_info"]] == ["all", "name_random"]
    # this build has no token columns: the card says so (whatever an earlier push had)
    assert "There are no token columns" in remote["card"] and "`input_ids`" not in remote["card"]


@pytest.mark.slow
def test_the_mutants_config_is_published_and_loads_back(hub, tmp_path):
    from procure_trl.perturb.mutate import MutationConfig, generate_mutants, killed_pairs
    from procure_trl.perturb.records import read_records, write_records
    from procure_trl.problems import problems_of_tasks

    rows = [r for r in read_records(FIXTURE) if r.status == "valid"]
    lines = generate_mutants(rows, problems_of_tasks([r.task_id for r in rows]),
                             MutationConfig(num_workers=2, progress=False))
    mutants = tmp_path / "mutants.jsonl"
    write_records(lines, mutants)
    out = tmp_path / "with-mutants"
    _run([sys.executable, str(SCRIPT), "--input_jsonl", str(FIXTURE), "--benchmarks", "humaneval,mbpp", "--output_dir",
          str(out), "--test_size", "0.34", "--mutants", str(mutants), "--push_to_hub", "--repo_id",
          "tester/procure-mutants"], _env(hub, tmp_path / "home-mutants"))
    local = _local(out)
    remote = _load_from_hub(hub, tmp_path, "mutants", repo_id="tester/procure-mutants")
    assert "mutants" in remote["configs"] and remote["mutants"] == local["mutants"]
    assert sum(len(split) for split in remote["mutants"].values()) == len(killed_pairs(lines))
    meta = _front_matter(remote["card"])
    counts = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in meta["dataset_info"]}
    assert counts["mutants"] == {split: len(part) for split, part in local["mutants"].items()}
    assert "## Mutants: repair and defect detection" in remote["card"]


def test_server_speaks_the_hub_error_contract(hub):
    def call(method, path, body=None, token=True):
        request = urllib.request.Request(hub.url + path, data=body, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {hub.state.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    status, headers, _ = call("GET", "/api/datasets/nobody/missing")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    payload = json.dumps({"name": "contract", "organization": "tester", "type": "dataset"}).encode()
    assert call("POST", "/api/repos/create", payload, token=False)[0] == 401
    assert call("POST", "/api/repos/create", payload)[0] == 200
    status, _, body = call("POST", "/api/repos/create", payload)
    assert status == 409 and json.loads(body)["url"].endswith("/datasets/tester/contract")
    status, _, body = call("GET", "/api/datasets/tester/contract")
    sha = json.loads(body)["sha"]
    assert len(sha) == 40 and int(sha, 16) >= 0
    status, headers, body = call("GET", f"/datasets/tester/contract/resolve/{sha}/.gitattributes")
    assert status == 200 and headers["X-Repo-Commit"] == sha and headers["ETag"].strip('"') != ""
    assert call("GET", "/datasets/tester/contract/resolve/main/nope.txt")[1]["X-Error-Code"] == "EntryNotFound"
    assert call("GET", "/api/datasets/tester/contract/revision/" + "0" * 40)[1]["X-Error-Code"] == "RevisionNotFound"
    stale = json.dumps({"key": "header", "value": {"summary": "x", "parentCommit": "f" * 40}}).encode()
    assert call("POST", "/api/datasets/tester/contract/commit/main", stale)[0] == 412
    status, _, body = call("POST", "/api/validate-yaml", json.dumps({"content": "---\n---\n"}).encode())
    assert status == 200 and json.loads(body) == {"errors": [], "warnings": []}
