"""Shared data for the training tests, and a worker script for the multi-process equivalence test.

Run as a script (``torchrun --nproc_per_node N tests/training_ddp_worker.py OUT.pt STEPS BATCH GA``) it
trains the tiny Llama with ConceptAwareSFTTrainer on CPU (gloo) and saves the final parameters from
rank 0, so a test can compare N processes against one process with the same global batch.
"""

from __future__ import annotations

import os
import re
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_PROGRAMS = [
    (
        "Write a function that adds two numbers.\n", "def add(a, b):\n    total = a + b\n    return total\n",
        {"a": "x", "b": "y"}
    ),
    (
        "Return True when n is even.\n",
        "def is_even(n):\n    if n % 2 == 0:\n        return True\n    else:\n        return False\n", {"n": "value"}
    ),
    ("Sum the numbers below ten.\n", "def total_below(limit):\n    total = 0\n    for i in range(limit):\n"
                                     "        total = total + i\n    return total\n", {"total": "acc", "i": "k"}),
    ("Return the largest value of a list.\n", "def largest(values):\n    best = values[0]\n    for v in values:\n"
                                               "        if v > best:\n            best = v\n    return best\n",
     {"best": "top"}),
]


def rename(code: str, mapping: dict[str, str]) -> tuple[str, list[list[int]]]:
    """Rename whole-word identifiers; return the new code and the changed [start, end) spans in it."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    out, spans, last = [], [], 0
    pos = 0
    for m in pattern.finditer(code):
        out.append(code[last : m.start()])
        pos += m.start() - last
        new = mapping[m.group(0)]
        spans.append([pos, pos + len(new)])
        out.append(new)
        pos += len(new)
        last = m.end()
    out.append(code[last:])
    return "".join(out), spans


def make_rows(include_counterfactuals: bool = True) -> list[dict]:
    """Original rows (empty spans) followed, per program, by a renamed counterfactual."""
    rows = []
    for prompt, code, mapping in _PROGRAMS:
        rows.append({"prompt": prompt, "completion": code, "changed_spans": []})
        if include_counterfactuals:
            new, spans = rename(code, mapping)
            rows.append({"prompt": prompt, "completion": new, "changed_spans": spans})
    return rows


def main(out_path: str, steps: int, batch_size: int, grad_accum: int) -> None:
    import torch
    from datasets import Dataset

    from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer
    from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_llama(tokenizer)
    # 4 rows = one global batch: every step sees the same rows whatever the process count
    rows = make_rows()[2:6]
    args = ConceptAwareSFTConfig(
        output_dir=os.path.join(os.path.dirname(out_path), "run"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        weight_decay=0.0,
        bf16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        dataloader_drop_last=False,
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    trainer = ConceptAwareSFTTrainer(
        model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    trainer.train()
    if trainer.accelerator.is_main_process:
        state = {
            k: v.detach().cpu().clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()
        }
        losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
        torch.save({"params": state, "losses": losses, "world_size": trainer.accelerator.num_processes}, out_path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    # Everything the run writes is written. Leave without the interpreter's teardown: there, with a gloo process
    # group, a finished process sometimes aborts ("terminate called without an active exception", 1 run in 12
    # here) or, after destroy_process_group(), hangs; torchrun would report the run failed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
