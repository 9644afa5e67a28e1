"""The README's end-to-end chain connects as written: one set of paths, one base model, and (slow) the CPU
variant run command by command from a fresh folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BASE_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
TINY_MODEL = "outputs/tiny-model"
#: Options only the CPU variant adds (smaller slices and completions); everything else must match.
CPU_ONLY = {"--limit", "--n", "--k", "--max-new-tokens"}


def _block(name: str) -> str:
    match = re.search(rf"<!-- chain: {name} -->\n```bash\n(.*?)```", README, re.S)
    assert match, f"README.md has no ```bash block after <!-- chain: {name} -->"
    return match.group(1)


def _commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists (continuation lines joined, comments dropped)."""
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _without_cpu_options(command: list[str]) -> list[str]:
    out, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg in CPU_ONLY:
            skip = True
        else:
            out.append(arg)
    return out


#: The CPU block's set-up lines: the environment `make demo` made, and MBPP offline from the tests' rows.
CPU_SETUP = [["source", ".venv/bin/activate"], ["export", "PROCURE_MBPP_DIR=tests/fixtures/mbpp"]]


def test_the_cpu_chain_is_the_full_chain_with_the_model_swapped():
    full, cpu = _commands(_block("full")), _commands(_block("cpu"))
    assert full[0] == CPU_SETUP[0] and cpu[:2] == CPU_SETUP  # both activate the environment first
    full, cpu = full[1:], cpu[2:]
    assert cpu[0] == ["python", "-m", "procure_trl.testing_utils", TINY_MODEL]  # how the tiny model is made
    swapped = [
        [TINY_MODEL if a == BASE_MODEL else "examples/cpu_smoke.yaml" if a == "examples/procure_qlora.yaml" else a
         for a in command]
        for command in full
    ]
    assert [_without_cpu_options(c) for c in cpu[1:]] == swapped


def test_one_set_of_paths_and_one_base_model():
    full = _block("full")
    qlora = yaml.safe_load((ROOT / "examples" / "procure_qlora.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "examples" / "cpu_smoke.yaml").read_text())
    # the recipe reads what `procure build` wrote and saves what `procure evaluate --adapter` loads
    assert f"--output-dir {qlora['dataset_name']}" in full and f"--dataset {qlora['dataset_name']}" in full
    assert f"--adapter {qlora['output_dir']}" in full
    assert qlora["model_name_or_path"] == BASE_MODEL and f"--model {BASE_MODEL}" in full
    for key in ("dataset_name", "dataset_config", "dataset_train_split", "output_dir"):
        assert smoke[key] == qlora[key], key
    assert smoke["model_name_or_path"] == TINY_MODEL
    assert smoke["bf16"] is False and smoke["dtype"] == "float32" and smoke["use_cpu"] is True
    # every code model the docs, examples and commands' help name is the base model (docs/llm.md's endpoint
    # model is a generator)
    documented = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").iterdir(),
                  *(ROOT / "experiments").glob("*.yaml"), *(ROOT / "procure_trl" / "commands").glob("*.py")]
    for path in documented:
        if path.name == "llm.md":
            continue
        names = set(re.findall(r"Qwen/[\w.-]+", path.read_text(encoding="utf-8")))
        assert names <= {BASE_MODEL}, f"{path.relative_to(ROOT)} names {names - {BASE_MODEL}}"
    # the folders: one spelling each, everywhere
    text = "\n".join(p.read_text(encoding="utf-8") for p in documented)
    for stale in ("outputs/procure-cf", "outputs/procure_lora", "outputs/eval_base", "outputs/eval_procure"):
        assert stale not in text, stale


def _scratch_clone(dest: Path) -> Path:
    """The working tree as a fresh clone sees it (tracked and untracked files that git does not ignore), with the
    environment under test as its ``.venv``: what `make demo` would have installed there."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_symlink():  # as git checks it out: the link itself (examples/, evaluation/metrics/)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).symlink_to(os.readlink(source))
        elif source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def _make(target: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    # -o: the environment exists already (it runs these tests), so make does not reinstall it
    return subprocess.run(["make", target, "-o", ".venv/.installed"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=2400)


@pytest.mark.slow
def test_a_fresh_clone_runs_the_demo_then_the_cpu_chain_as_written_then_the_fast_suite(tmp_path):
    """README order on a fresh clone: `make demo`, the CPU block exactly as README.md has it (its own `source` and
    `export` lines included), then `make test-fast` in the folder the chain filled."""
    if not (Path(sys.prefix) / "bin" / "activate").is_file():
        pytest.skip(f"the tests run outside a virtual environment ({sys.prefix}); the chain activates .venv")
    clone = _scratch_clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_ALLOW_CODE_EVAL", "PROCURE_MBPP_DIR", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST",
                        "HF_DATASETS_CACHE")}  # a fresh clone has none of this suite's cached datasets
    env["PYTHONPATH"] = str(clone)  # the clone's code, whichever way python or procure is started
    demo = _make("demo", clone, env)
    assert demo.returncode == 0, f"{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}"
    assert (clone / "outputs" / "demo" / "humaneval_counterfactuals.jsonl").is_file()
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + _block("cpu")], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    out = clone / "outputs"
    assert (out / "procure-qlora" / "adapter_model.safetensors").is_file()
    base = json.loads((out / "eval-base" / "report.json").read_text())
    tuned = json.loads((out / "eval-procure" / "report.json").read_text())
    trained = set(json.loads((out / "procure-qlora" / "procure_training_data.json").read_text())["task_ids"])
    scored = {t["task_id"] for t in tuned["tasks"]}
    assert scored and scored == {t["task_id"] for t in base["tasks"]} and scored.isdisjoint(trained)
    comparison = (out / "comparison" / "comparison.md").read_text()
    assert "`outputs/tiny-model + adapter outputs/procure-qlora`" in comparison
    assert (out / "comparison" / "difference_1.png").is_file()
    # the fast suite, from the folder that now holds a finished chain, without the full MBPP copy
    fast = _make("test-fast", clone, env)
    assert fast.returncode == 0, f"{fast.stdout[-6000:]}\n{fast.stderr[-3000:]}"


def test_the_readme_stays_short():
    # what it is, the set-up, the chain, one table per stage, links: the details live in docs/
    assert len(README.splitlines()) < 200
