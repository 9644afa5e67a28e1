"""Two toy problems, what a scripted model writes for their prompts, and counterfactual-file lines for them:
the shared material of the harness tests."""

from __future__ import annotations

import difflib

from procure_trl.problems import Problem

SIGN_PROMPT = 'def sign(x):\n    """Sign of x."""\n'
SIGN = Problem(
    task_id="toy/sign",
    prompt=SIGN_PROMPT,
    solution="    if x > 0:\n        y = 1\n    else:\n        y = -1\n    return y\n",
    tests="assert sign(3) == 1\nassert sign(-2) == -1\n",
    entry_point="sign",
)
DOUBLE = Problem(
    task_id="toy/double",
    prompt="def double(x):\n",
    solution="    return 2 * x\n",
    tests="assert double(2) == 4\n",
    entry_point="double",
)
PROBLEMS = [SIGN, DOUBLE]

FLIPPED = SIGN_PROMPT + "    if not x > 0:\n        y = -1\n    else:\n        y = 1\n    return y\n"
RENAMED = SIGN_PROMPT + "    if x > 0:\n        v = 1\n    else:\n        v = -1\n    return v\n"

# What the scripted "model" writes after each prompt (sample 0, sample 1).
KEEP_BRANCHES = "        y = 1\n    else:\n        y = -1\n    return y\n"
SWAP_BRANCHES = "        y = -1\n    else:\n        y = 1\n    return y\n"
COMPLETIONS = {
    SIGN_PROMPT: ["    return 1 if x > 0 else -1\n", "    return 1\n"],  # pass, fail
    SIGN_PROMPT + "    if x > 0:\n": [KEEP_BRANCHES, KEEP_BRANCHES],  # reference of the flip: pass, pass
    SIGN_PROMPT + "    if not x > 0:\n": [KEEP_BRANCHES, SWAP_BRANCHES],  # ignores the `not`: fail, pass
    SIGN_PROMPT + "    if x > 0:\n        y = 1\n    else:\n": ["        y = -1\n    return y\n"] * 2,  # pass, pass
    SIGN_PROMPT + "    if x > 0:\n        v = 1\n    else:\n": [
        "        v = -1\n    return v\n",  # pass
        "        y = -1\n    return y\n",  # UnboundLocalError on sign(3): fail
    ],
    "def double(x):\n": ["    while True:\n        pass\n", "    return x + x\n"],  # timed out, pass
}


def spans(original: str, code: str) -> list[list[int]]:
    """The changed spans of ``code`` against ``original`` (deletions leave none)."""
    ops = difflib.SequenceMatcher(a=original, b=code, autojunk=False).get_opcodes()
    return [[j1, j2] for tag, _, _, j1, j2 in ops if tag != "equal" and j2 > j1]  # deletions leave no span


def counterfactual_line(problem: Problem, concept: str, code: str, status: str = "valid") -> dict:
    """One line of a counterfactual JSONL file: ``code`` as ``concept``'s counterfactual of ``problem``."""
    original = problem.prompt + problem.solution
    return {
        "task_id": problem.task_id,
        "concept": concept,
        "status": status,
        "reason": "",
        "original": original,
        "code": code,
        "changed_spans": spans(original, code),
    }
