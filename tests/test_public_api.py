"""The public API: every advertised name resolves, and importing the package stays light."""

import subprocess
import sys

import procure_trl


def test_every_export_resolves():
    missing = [name for name in procure_trl.__all__ if not hasattr(procure_trl, name)]
    assert missing == []


def test_unknown_name_raises_attribute_error():
    try:
        procure_trl.NotAThing  # noqa: B018
    except AttributeError as err:
        assert "NotAThing" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_perturbation_side_does_not_import_torch():
    # `procure perturb` must start fast: the analysis/perturbation/validation path never imports torch/trl.
    code = (
        "import sys, procure_trl\n"
        "procure_trl.perturb('def f(a):\\n    b = a\\n    return b\\n', 'name_random')\n"
        "procure_trl.Validator\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
