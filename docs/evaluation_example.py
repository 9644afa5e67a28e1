"""Make the example report and plots of docs/evaluation.md, offline, with a *synthetic* model.

No code model is downloaded: a scripted backend plays a model that knows every reference solution but makes
mistakes at a per-concept rate (higher on counterfactuals than on originals). The numbers illustrate the
report's format only; they say nothing about any real model.

    procure perturb --benchmark humaneval --limit 40 --output outputs/he40_counterfactuals.jsonl --seed 0
    HF_ALLOW_CODE_EVAL=1 python docs/evaluation_example.py outputs/he40_counterfactuals.jsonl outputs/eval_example
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

from procure_trl.concepts import Concept
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.counterfactuals import load_counterfactual_variants
from procure_trl.evaluation.sampling import ScriptedBackend
from procure_trl.evaluation.prompts import TruncationError, counterfactual_prompt_pair
from procure_trl.evaluation.run import evaluate_model
from procure_trl.problems import load_problems

#: Chance that the synthetic model writes a wrong completion, by what it is completing.
ERROR_RATE = {
    "original": 0.25,
    Concept.IF_ELSE_FLIP: 0.55,
    Concept.INDEPENDENT_SWAP: 0.35,
    Concept.DEF_USE_BREAK: 0.4,
    Concept.NAME_RANDOM: 0.3,
    Concept.NAME_SHUFFLE: 0.45,
}
WRONG = "\nraise AssertionError('synthetic mistake')\n"


def main(counterfactuals: str, output_dir: str, limit: int = 40) -> None:
    all_problems = load_problems("humaneval")
    problems = all_problems[:limit]
    by_id = {p.task_id: p for p in problems}
    # Which full program (and error rate) each prompt the harness will ask about belongs to.
    targets: dict[str, tuple[str, float]] = {p.prompt: (p.program, ERROR_RATE["original"]) for p in problems}
    for v in load_counterfactual_variants(counterfactuals, {p.task_id: p for p in all_problems}):
        if v.task_id not in by_id:
            continue
        try:
            pair = counterfactual_prompt_pair(
                v.original, v.code, v.concept, v.changed_spans, len(by_id[v.task_id].prompt.splitlines())
            )
        except TruncationError:
            continue
        targets.setdefault(pair.reference, (v.original, ERROR_RATE["original"]))
        targets[pair.counterfactual] = (v.code, ERROR_RATE[v.concept])

    def complete(prompt: str, sample_index: int) -> str:
        program, error_rate = targets[prompt]
        rest = program[len(prompt) :]
        rng = random.Random(f"{prompt}\0{sample_index}")  # the same answer on every rerun
        return rest + WRONG if rng.random() < error_rate else rest

    shutil.rmtree(output_dir, ignore_errors=True)
    config = EvaluationConfig(
        model="synthetic-oracle-with-mistakes",
        benchmark="humaneval",
        counterfactuals=counterfactuals,
        output_dir=output_dir,
        limit=limit,
        n=5,
        k=(1, 5),
        stop_sequences=(),  # the scripted completions are whole programs' tails
        num_workers=2,
    )
    report = evaluate_model(config, problems=all_problems, backend=ScriptedBackend(complete))
    print(Path(report.files["summary"]).read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
