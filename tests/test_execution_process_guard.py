"""The process-guard plugin finds leftovers (and passes a clean run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid


def _run_pytest(tmp_path, body: str) -> subprocess.CompletedProcess:
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["plugin_process_guard"]\n')
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": tests_dir + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PROCURE_PROCESS_GUARD_GRACE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PROCURE_PROCESS_GUARD", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_guard_fails_a_session_that_leaves_an_orphan_behind(tmp_path):
    marker = f"guard_probe_{uuid.uuid4().hex}"
    result = _run_pytest(
        tmp_path,
        f"""
        import subprocess, sys
        def test_leaks():
            # A grandchild in its own session, orphaned when its parent exits at once.
            code = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(120)\\n"
            subprocess.run([sys.executable, "-c", code, "{marker}"], check=True)
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "process guard" in result.stdout and "still alive" in result.stdout, result.stdout
    # ... and the guard killed it.
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_guard_passes_a_clean_session(tmp_path):
    result = _run_pytest(
        tmp_path,
        """
        import subprocess, sys
        def test_clean():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "process guard" not in result.stdout
