"""^C / SIGTERM in any ``procure`` command: one line (what is kept, how to continue), exit 130."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from procure_trl.cli import run_reporting_errors
from procure_trl.commands.interrupts import INTERRUPTED_EXIT


def _stop(how: signal.Signals):
    def function():
        os.kill(os.getpid(), how)
        time.sleep(5)  # the signal lands here
        raise AssertionError("not interrupted")

    return function


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_is_one_line_and_exit_130(how, capsys):
    code = run_reporting_errors("procure x", _stop(how), interrupted=lambda err: "kept: y; rerun to continue")
    assert code == INTERRUPTED_EXIT == 130
    err = capsys.readouterr().err
    assert err == "procure x: interrupted; kept: y; rerun to continue\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


@pytest.mark.parametrize("command", ["train", "evaluate", "experiment", "build"])
def test_every_long_command_says_what_an_interrupt_keeps(command):
    module = importlib.import_module(f"procure_trl.commands.{command}")
    hint = module.interrupted_hint(None, KeyboardInterrupt())
    assert "rerun" in hint or "nothing" in hint or "continue" in hint


@pytest.mark.slow
def test_train_saves_a_resumable_checkpoint_on_sigterm(tmp_path, tiny_recipe):
    out = tmp_path / "out"
    path = tiny_recipe(concept_loss_weight=0.1, attention_layers="1", output_dir=str(out), max_steps=400,
                       per_device_train_batch_size=2, save_strategy="no", logging_steps=1)
    command = [sys.executable, "-m", "procure_trl.cli", "train", "--config", str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # the first logged step: training is under way
            if "'loss'" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"procure train: interrupted; checkpoint saved to {out}/checkpoint-"), last
    checkpoint = last.split("checkpoint saved to ")[1].split(";")[0]
    step = int(checkpoint.rsplit("-", 1)[1])
    assert 1 <= step < 400 and os.path.exists(os.path.join(checkpoint, "optimizer.pt"))
    assert not (out / "adapter_model.safetensors").exists()  # no final model from a stopped run
    # --resume_from_checkpoint continues from that step to max_steps
    resumed = subprocess.run([*command, "--resume_from_checkpoint", checkpoint, "--max_steps", str(step + 2)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("'loss'") == 2  # only the two steps after the checkpoint ran (one log a step)
    assert (out / "adapter_model.safetensors").exists()
