"""pass@k with sandboxed parallel execution: a drop-in, offline-loadable alternative to `code_eval`.

Thin wrapper over ``procure_trl.metrics.functional_correctness`` (execution in ``procure_trl.execution``, the
estimator in ``procure_trl.metrics.pass_at_k``): the evaluation harness calls the same functions.
"""

import os

import datasets
import evaluate

from procure_trl.execution.limits import check_timeout
from procure_trl.metrics.functional_correctness import (
    check_candidates,
    check_num_workers,
    code_eval_results,
    execute_candidates,
    score_candidates,
)
from procure_trl.metrics.pass_at_k import check_ks

_CITATION = """\
@misc{chen2021codex,
      title={Evaluating Large Language Models Trained on Code},
      author={Mark Chen and Jerry Tworek and Heewoo Jun and Qiming Yuan and Henrique Ponde de Oliveira Pinto
              and others},
      year={2021},
      eprint={2107.03374},
      archivePrefix={arXiv},
      primaryClass={cs.LG}
}
"""

_DESCRIPTION = """\
Estimates pass@k (the unbiased estimator of Chen et al., 2021) by executing every candidate program followed by its
problem's tests in a sandboxed, resource-limited process pool (procure_trl.execution). Same interface as `code_eval`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of candidates per problem; each candidate is a string of Python code.
    references: one test program per problem; it raises (e.g. a failing assert) when a candidate is wrong.
        Each candidate is executed as `candidate + "\\n" + reference`.
    k: the k values of pass@k (default [1, 10, 100]); a k larger than a problem's number of candidates is
        skipped with a warning.
    num_workers: candidates executed in parallel (default 4).
    timeout: wall-clock seconds per candidate (default 3.0); past it the candidate counts as failed ("timed out").
Returns:
    pass_at_k: dict, e.g. {"pass@1": 0.5, "pass@2": 1.0}
    results: dict problem index -> list of (candidate index, result) where result has `task_id`, `passed`,
        `result` ("passed", "failed: <error>" or "timed out") and `completion_id`, as in `code_eval`.
Examples:
    >>> import os
    >>> os.environ["HF_ALLOW_CODE_EVAL"] = "1"
    >>> from procure_trl.metrics import module_path
    >>> pass_at_k_metric = evaluate.load(module_path("pass_at_k"))
    >>> test_cases = ["assert add(2, 3) == 5"]
    >>> candidates = [["def add(a, b): return a * b", "def add(a, b): return a + b"]]
    >>> scores, results = pass_at_k_metric.compute(references=test_cases, predictions=candidates, k=[1, 2])
    >>> scores
    {'pass@1': 0.5, 'pass@2': 1.0}
"""

_WARNING = """
################################################################################
                                  !!!WARNING!!!
################################################################################
This metric executes untrusted model-generated code in Python. procure_trl's
executor limits time, memory, processes and file sizes, removes network access
where the kernel allows it and runs each program in a private directory, but it
is defence in depth, NOT a security sandbox: run hostile code in a container or
VM. Read docs/execution.md of procure_trl before enabling execution.

Once you have read this disclaimer and taken appropriate precautions, set the
environment variable HF_ALLOW_CODE_EVAL="1":

>>> import os
>>> os.environ["HF_ALLOW_CODE_EVAL"] = "1"

################################################################################\
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Value("string"),
                }
            ),
            homepage="https://arxiv.org/abs/2107.03374",
            codebase_urls=["https://github.com/openai/human-eval"],
            reference_urls=["https://arxiv.org/abs/2107.03374"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Check the inputs, then execute every candidate with its tests and estimate pass@k.
        """
        # Checked before `evaluate` stores the inputs: its Arrow conversion would turn a bad input into an
        # unrelated-looking error (or silently into a string).
        check_candidates(predictions, references)
        check_ks(kwargs.get("k", [1, 10, 100]))
        check_timeout(kwargs.get("timeout", 3.0), "timeout")
        check_num_workers(kwargs.get("num_workers", 4))
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, k=(1, 10, 100), num_workers=4, timeout=3.0):
        if os.getenv("HF_ALLOW_CODE_EVAL", "0") != "1":
            raise ValueError(_WARNING)
        outcomes = execute_candidates(predictions, references, num_workers=num_workers, timeout=timeout)
        return score_candidates(outcomes, k), code_eval_results(outcomes)
