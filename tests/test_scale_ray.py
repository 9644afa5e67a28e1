"""`procure perturb --dataset --engine ray` on a real local Ray (2 CPUs): the rows of the datasets engine, no Ray
process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray engine needs `pip install procure_trl[ray]`")

pytestmark = pytest.mark.slow

CODE = (
    "def clip_sum{k}(values, limit):\n"
    "    total = 0\n"
    "    for value in values:\n"
    "        if value > limit:\n"
    "            total += limit\n"
    "        else:\n"
    "            total += value\n"
    "    return total\n"
)
# names of the processes a local Ray runs (raylet, GCS, workers, their helpers)
_RAY_MARKERS = ("raylet", "gcs_server", "ray::", "default_worker.py", "log_monitor.py", "ray/dashboard",
                "runtime_env/agent", "monitor.py")


def _ray_processes() -> set[tuple[int, str]]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in _RAY_MARKERS) and "pytest" not in cmdline:
            found.add((int(entry.name), cmdline[:120]))
    return found


def _rows(output_dir: Path) -> list[str]:
    from datasets import load_dataset

    rows = load_dataset(str(output_dir), keep_in_memory=True)["train"]
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_ray_engine_gives_the_rows_of_datasets_map_and_leaves_no_ray_process(tmp_path):
    source = tmp_path / "in.jsonl"
    rows = []
    for k in range(24):
        row = {"prompt": f"Sum values clipped at a limit ({k}).", "completion": CODE.format(k=k)}
        row["tests"] = [f"assert clip_sum{k}([1, 5, 2], 3) == 6"] if k % 3 == 0 else []
        rows.append(row)
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = _ray_processes()
    command = [sys.executable, "-m", "procure_trl.cli", "perturb", "--dataset", str(source), "--batch-size", "5"]
    env = {**os.environ, "RAY_ADDRESS": ""}  # a local Ray, never a cluster the machine may know of
    env.pop("RAY_ADDRESS")
    ray_run = subprocess.run([*command, "--output-dir", str(tmp_path / "ray"), "--engine", "ray", "--num-proc", "2"],
                             capture_output=True, text=True, env=env, timeout=600)
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    local_run = subprocess.run([*command, "--output-dir", str(tmp_path / "local"), "--num-proc", "2"],
                               capture_output=True, text=True, env=env, timeout=600)
    assert local_run.returncode == 0, local_run.stderr[-3000:]

    ray_rows, local_rows = _rows(tmp_path / "ray"), _rows(tmp_path / "local")
    assert len(local_rows) > 24 and ray_rows == local_rows
    assert any('"tests_run": true' in r for r in ray_rows)  # the executor ran inside the Ray workers
    assert (tmp_path / "ray" / "README.md").read_text().split("Original rows")[1] == \
        (tmp_path / "local" / "README.md").read_text().split("Original rows")[1]

    deadline = time.monotonic() + 15
    while (left := _ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Ray processes left after the run: {sorted(left)}"
