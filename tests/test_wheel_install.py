"""The package works installed from a non-editable wheel, run from a folder outside the repository.

The wheel is built from a copy of the working tree's files (what a clean clone holds, plus files not committed
yet), installed with ``--no-deps`` into a fresh venv whose dependencies (torch, transformers, ...) come from the
environment running the tests through a ``.pth`` line: that path is appended after the venv's own site-packages,
and ``.pth`` files inside it are not processed, so the only ``procure_trl`` the venv can import is the wheel's
(an editable install of the repository there stays inactive). Everything runs offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

METRICS_FROM_THE_WHEEL = r"""
import json, os, sys
import evaluate
import procure_trl
from procure_trl.metrics import module_path
from procure_trl.metrics.ccs import concept_consistency_score
from procure_trl.metrics.functional_correctness import execute_candidates, score_candidates
ccs_in = dict(predictions=[[1, 0, 1], [0, 0], [1]], references=[[1, 1], [0, 1], [0]],
              concepts=["if_else_flip", "name_random", "name_random"], n_bootstrap=100)
preds = [["def f(x): return x + 1", "def f(x): return x"]]
tests = ["assert f(1) == 2"]
ccs = evaluate.load(module_path("ccs")).compute(**ccs_in)
scores, _ = evaluate.load(module_path("pass_at_k")).compute(predictions=preds, references=tests, k=[1, 2])
json.dump({
    "package": procure_trl.__file__,
    "modules": [module_path("ccs"), module_path("pass_at_k")],
    "ccs_equal": json.loads(json.dumps(ccs)) == json.loads(json.dumps(concept_consistency_score(**ccs_in))),
    "pass_at_k": scores,
    "pass_at_k_function": score_candidates(execute_candidates(preds, tests), [1, 2]),
}, open(sys.argv[1], "w"))
"""


def _working_tree_copy(destination: Path) -> Path:
    """The repository's tracked and untracked (not ignored) files, symlinks kept: a clean clone of this tree."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, destination / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return destination


def _run(args, cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, args))} failed:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_chain_from_outside_the_repository(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clone holds")
    source = _working_tree_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    # No build isolation: offline, pip could not fetch setuptools into an isolated build environment.
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", dist, "-q"],
         tmp_path, dict(os.environ))
    (wheel,) = dist.glob("procure_trl-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, dict(os.environ))
    python = venv / "bin" / "python"
    venv_site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     dict(os.environ)).stdout.strip()
    Path(venv_site, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, "-q"],
         tmp_path, dict(os.environ))

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HF_ALLOW_CODE_EVAL="1", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    procure = venv / "bin" / "procure"

    _run([python, "-m", "procure_trl.testing_utils", "tiny-model"], work, env)
    _run([procure, "perturb", "--benchmark", "humaneval", "--limit", "3", "--output", "cf.jsonl", "--seed", "0"],
         work, env)
    assert len((work / "cf.jsonl").read_text().splitlines()) == 3 * 5
    _run([procure, "build", "--input-jsonl", "cf.jsonl", "--benchmarks", "humaneval", "--output-dir", "dataset",
          "--test-size", "0.34"], work, env)
    assert (work / "dataset" / "all" / "train-00000-of-00001.parquet").is_file()
    assert "ProCURE counterfactual code pairs" in (work / "dataset" / "README.md").read_text()  # template shipped
    _run([procure, "evaluate", "--model", "tiny-model", "--benchmark", "humaneval", "--limit", "2",
          "--counterfactuals", "cf.jsonl", "--n", "2", "--k", "1,2", "--max-new-tokens", "8", "--num-workers", "2",
          "--n-bootstrap", "50", "--device", "cpu", "--output-dir", "eval"], work, env)
    report = json.loads((work / "eval" / "report.json").read_text())
    assert [t["task_id"] for t in report["tasks"]] == ["HumanEval/0", "HumanEval/1"]
    _run([procure, "compare", "eval", "eval", "--output-dir", "comparison", "--n-bootstrap", "20"], work, env)
    assert (work / "comparison" / "comparison.md").is_file()

    _run([python, "-c", METRICS_FROM_THE_WHEEL, "metrics.json"], work, env)
    out = json.loads((work / "metrics.json").read_text())
    assert out["package"].startswith(venv_site), out["package"]  # the wheel's copy, not the repository
    assert all(path.startswith(venv_site) for path in out["modules"])
    assert out["ccs_equal"] is True
    assert out["pass_at_k"] == out["pass_at_k_function"] == {"pass@1": 0.5, "pass@2": 1.0}

    # the shipped recipe and experiment config, by name, from outside the repository
    _run([procure, "train", "--config", "cpu_smoke", "--model_name_or_path", "tiny-model", "--dataset_name", "dataset",
          "--output_dir", "adapter", "--max_steps", "2"], work, env)
    assert (work / "adapter" / "adapter_model.safetensors").is_file()
    _run([procure, "experiment", "--config", "ablation", "--smoke", "--output-dir", "ablation"], work, env,
         timeout=1200)
    assert list(work.glob("ablation*/*.md")), sorted(p.name for p in work.iterdir())
