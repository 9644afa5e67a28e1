"""Where the tests find MBPP: the full files when they sit where the loader looks, else the rows in fixtures.

``tests/conftest.py`` points ``$PROCURE_MBPP_DIR`` at the fixture rows when the full files are missing (a
clone without ``../shared``), so every loader call and every subprocess the tests start agree. Tests that
need the whole benchmark (its row counts, all 974 reference solutions) are marked ``requires_full_mbpp``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procure_trl.problems import MBPP_DIR_ENV, default_mbpp_dir

FIXTURE_MBPP_DIR = Path(__file__).parent / "fixtures" / "mbpp"


def _full_mbpp_dir() -> Path | None:
    candidate = Path(os.environ[MBPP_DIR_ENV]) if MBPP_DIR_ENV in os.environ else default_mbpp_dir()
    return candidate if candidate != FIXTURE_MBPP_DIR and (candidate / "mbpp.jsonl").is_file() else None


#: The directory with the full MBPP files, or None when only the fixture rows are available.
FULL_MBPP_DIR = _full_mbpp_dir()

requires_full_mbpp = pytest.mark.skipif(
    FULL_MBPP_DIR is None,
    reason=f"needs the full MBPP files (not found at {default_mbpp_dir()}); set ${MBPP_DIR_ENV} to their folder",
)


def use_fixture_rows_if_needed() -> None:
    """Point the loaders (and child processes) at the fixture rows when the full files are missing."""
    if FULL_MBPP_DIR is None:
        os.environ[MBPP_DIR_ENV] = str(FIXTURE_MBPP_DIR)
