"""The README chain in the chat format, on the tiny model given a chat template: perturb, build, train, evaluate.

The dataset is built in the chat format (the model's tokenizer has a template), the adapter's training record says
so, ``procure evaluate --adapter`` renders its prompts through the template without being told, and asking it for
the completion format is a one-line error unless ``--allow-format-mismatch``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procure_trl.testing_utils import TINY_CHAT_TEMPLATE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_chain_in_chat_format_connects(tmp_path, monkeypatch, capsys):
    from transformers import AutoTokenizer

    from procure_trl.cli import main
    from procure_trl.testing_utils import save_tiny_model

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    model = str(save_tiny_model(str(tmp_path / "tiny-chat-model")))
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(model)

    cf = tmp_path / "cf.jsonl"
    assert main(["perturb", "--benchmark", "humaneval", "--limit", "8", "--output", str(cf), "--seed", "0"]) == 0
    data = tmp_path / "procure-counterfactuals"
    assert main(["build", "--input-jsonl", str(cf), "--benchmarks", "humaneval", "--tokenizer", model,
                 "--output-dir", str(data)]) == 0  # auto: chat, the tokenizer has a template
    adapter = tmp_path / "procure-qlora"
    assert main(["train", "--config", str(
        ROOT / "examples" / "cpu_smoke.yaml"
    ), "--model_name_or_path", model, "--dataset_name", str(data),
                 "--output_dir", str(adapter), "--max_steps", "2", "--max_length", "2048"]) == 0
    assert json.loads((adapter / "procure_training_data.json").read_text())["prompt_format"] == "chat"

    common = ["--n", "1", "--k", "1", "--max-new-tokens", "8", "--backend", "transformers", "--num-workers", "2",
              "--timeout", "2", "--n-bootstrap", "20", "--dataset", str(data), "--split", "test"]
    out = tmp_path / "eval-procure"
    assert main(["evaluate", "--model", model, "--adapter", str(adapter), *common, "--output-dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["prompt_format"] == "chat" and report["tasks"]
    # what the model was asked for an original, as readable text: the user turn with the task's statement, and an
    # empty program start (the assistant writes the whole program)
    original = report["tasks"][0]["original"]
    assert original["user"] and "<procure-chat-request>" not in original["user"] and original["prompt"] == ""

    capsys.readouterr()
    refused = main(["evaluate", "--model", model, "--adapter", str(adapter), *common, "--prompt-format",
                    "completion", "--output-dir", str(tmp_path / "eval-completion")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # (stderr also holds datasets' progress bars)
    assert refused == 2 and len(errors) == 1 and errors[0].startswith("procure evaluate: error: --prompt-format")
    assert "is in the chat format" in errors[0] and "--allow-format-mismatch" in errors[0]
    assert main(["evaluate", "--model", model, "--adapter", str(adapter), *common, "--prompt-format", "completion",
                 "--allow-format-mismatch", "--output-dir", str(tmp_path / "eval-completion")]) == 0
