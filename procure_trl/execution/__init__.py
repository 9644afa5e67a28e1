"""Sandboxed, parallel execution of Python programs against their tests.

Self-contained on purpose: nothing here imports the rest of ``procure_trl``, so the part that decides
"passed" can be read and trusted on its own.

    >>> from procure_trl.execution import ExecutionJob, execute
    >>> [r.status for r in execute([ExecutionJob("x = 1", "assert x == 1"), ExecutionJob("x = 1", "assert x == 2")])]
    [<Status.PASSED: 'passed'>, <Status.FAILED: 'failed'>]

Isolation is defence in depth, not a security boundary: see docs/execution.md.
"""

from procure_trl.execution.job import ExecutionJob, ExecutionResult, Status
from procure_trl.execution.limits import ExecutionLimits
from procure_trl.execution.pool import Executor, execute

__all__ = ["ExecutionJob", "ExecutionLimits", "ExecutionResult", "Executor", "Status", "execute"]
