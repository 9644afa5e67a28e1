"""The README's end-to-end chain connects as written: one set of paths, one base model, and (slow) the CPU
variant run command by command from a fresh folder."""

from __future__ import annotations

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


def test_the_cpu_chain_is_the_full_chain_with_the_model_swapped():
    full, cpu = _commands(_block("full")), _commands(_block("cpu"))
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


@pytest.mark.slow
def test_the_cpu_chain_runs_as_written(tmp_path):
    """The README's CPU block, line by line, in a fresh folder that holds the repository's examples/."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = str(Path(sys.executable).parent)  # `python` and `procure` of the environment under test
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HF_ALLOW_CODE_EVAL", None)  # the block exports it itself
    script = "set -euo pipefail\n" + _block("cpu")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    out = tmp_path / "outputs"
    assert (out / "procure-qlora" / "adapter_model.safetensors").is_file()
    import json

    base = json.loads((out / "eval-base" / "report.json").read_text())
    tuned = json.loads((out / "eval-procure" / "report.json").read_text())
    trained = set(json.loads((out / "procure-qlora" / "procure_training_data.json").read_text())["task_ids"])
    scored = {t["task_id"] for t in tuned["tasks"]}
    assert scored and scored == {t["task_id"] for t in base["tasks"]} and scored.isdisjoint(trained)
    comparison = (out / "comparison" / "comparison.md").read_text()
    assert "`outputs/tiny-model + adapter outputs/procure-qlora`" in comparison
    assert (out / "comparison" / "difference_1.png").is_file()
