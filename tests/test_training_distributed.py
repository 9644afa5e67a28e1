"""Two processes (DDP on CPU, gloo) end with the same parameters as one process on the same global batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_ddp_worker import main as train_worker

WORKER = Path(__file__).with_name("training_ddp_worker.py")
STEPS = 2


def _run_two_processes(out: Path) -> None:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(WORKER), str(out), str(STEPS), "1", "2",  # per process: batch 1, 2 accumulation steps
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    # own process group, so that a hang kills torchrun AND its workers
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the 2-process run timed out")
    assert proc.returncode == 0, output.decode(errors="replace")[-4000:]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    two = tmp_path / "two" / "params.pt"
    two.parent.mkdir()
    _run_two_processes(two)
    one = tmp_path / "one" / "params.pt"
    one.parent.mkdir()
    train_worker(str(one), STEPS, 4, 1)  # one process, batch 4: the same global batch

    a, b = torch.load(one), torch.load(two)
    assert a["world_size"] == 1 and b["world_size"] == 2
    assert len(a["losses"]) == len(b["losses"]) == STEPS
    for la, lb in zip(a["losses"], b["losses"]):
        assert la == pytest.approx(lb, rel=1e-5)
    moved = 0
    for name, value in a["params"].items():
        torch.testing.assert_close(b["params"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    initial = _initial_params()
    moved = sum(int(not torch.equal(initial[n], v)) for n, v in a["params"].items())
    assert moved > 0  # training changed the weights, so the comparison means something


def _initial_params():
    from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer

    return build_tiny_llama(build_tiny_tokenizer()).state_dict()
