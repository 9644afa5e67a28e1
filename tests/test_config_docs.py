"""Every config dataclass follows TRL's style: a `Parameters:` block naming each field, `metadata["help"]` on
each field, and the defaults the docstring states are the field defaults (read from the source, no imports)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "procure_trl"


def _config_classes():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            decorated = any("dataclass" in ast.unparse(d) for d in getattr(node, "decorator_list", []))
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and decorated:
                yield pytest.param(node, id=f"{path.relative_to(PACKAGE.parent)}::{node.name}")


def _own_fields(cls: ast.ClassDef):
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if not ast.unparse(node.annotation).startswith("ClassVar"):
                yield node


def _field_call(node: ast.AnnAssign) -> dict[str, ast.expr]:
    value = node.value
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
        return {k.arg: k.value for k in value.keywords}
    return {} if value is None else {"default": value}


CONFIGS = list(_config_classes())


def test_the_configs_are_found():
    names = {p.values[0].name for p in CONFIGS}
    assert {"GenerationConfig", "ValidationConfig", "LLMGeneratorConfig", "EvaluationConfig", "BuildConfig",
            "ConceptAwareSFTConfig"} <= names


@pytest.mark.parametrize("cls", CONFIGS)
def test_config_follows_the_trl_docstring_style(cls):
    doc = ast.get_docstring(cls) or ""
    assert "\nParameters:\n" in doc, f"{cls.name}: no `Parameters:` block"
    documented = dict(re.findall(r"^    (\w+) \((`[^\n]*)\):$", doc, flags=re.M))
    for node in _own_fields(cls):
        name = node.target.id
        assert name in documented, f"{cls.name}.{name} is not in the Parameters block as `{name} (`type`...):`"
        call = _field_call(node)
        metadata = call.get("metadata")
        helps = [v for k, v in zip(metadata.keys, metadata.values) if getattr(k, "value", None) == "help"] \
            if isinstance(metadata, ast.Dict) else []
        assert helps, f"{cls.name}.{name} has no metadata={{'help': ...}}"
        stated = re.search(r"defaults to `([^`]*)`", documented[name])
        if stated and "default" in call:
            try:
                written, actual = ast.literal_eval(stated.group(1)), ast.literal_eval(call["default"])
            except (ValueError, SyntaxError):
                continue  # a default named in words (`ValidationConfig.timeout`, all five concepts)
            assert written == actual, f"{cls.name}.{name}: the docstring says {written!r}, the field {actual!r}"
