"""The private TRL/transformers hooks the trainer relies on: matched on the installed versions, named when they
change."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
import sys
import types

import pytest

from procure_trl.training import extension_points as ep
from procure_trl.training.extension_points import EXTENSION_POINTS, check_extension_points

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "training.md"
SETUP = pathlib.Path(__file__).resolve().parents[1] / "setup.cfg"


@pytest.fixture(autouse=True)
def fresh_lookups():
    ep._resolve.cache_clear()
    ep._installed_problems.cache_clear()
    yield
    ep._resolve.cache_clear()
    ep._installed_problems.cache_clear()


def _parent_and_attr(point):
    parts = point.qualname.split(".")
    parent = importlib.import_module(point.module)
    for part in parts[:-1]:
        parent = getattr(parent, part)
    return parent, parts[-1]


def test_installed_versions_match_every_extension_point():
    assert check_extension_points() == []


@pytest.mark.parametrize("point", [p for p in EXTENSION_POINTS if p.parameters is not None], ids=lambda p: p.qualname)
def test_a_changed_signature_is_named(monkeypatch, point):
    def stub(*args, **kwargs):
        return None

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in point.parameters if n != "kwargs"]
    stub.__signature__ = inspect.Signature([*params, inspect.Parameter("new_arg", inspect.Parameter.KEYWORD_ONLY)])
    monkeypatch.setattr(*_parent_and_attr(point), stub)
    problems = check_extension_points()
    assert len(problems) == 1 and problems[0].startswith(point.name + " "), problems
    assert "changed its parameters" in problems[0] and "new_arg" in problems[0]


@pytest.mark.parametrize("point", EXTENSION_POINTS, ids=lambda p: p.qualname)
def test_a_removed_hook_is_named(monkeypatch, point):
    parent, attr = _parent_and_attr(point)
    if inspect.ismodule(parent):  # a stand-in module without it (lazy modules cannot lose an attribute)
        stand_in = types.ModuleType(point.module)

        def without(name, module=parent):
            if name == attr:
                raise AttributeError(name)
            return getattr(module, name)

        stand_in.__getattr__ = without
        monkeypatch.setitem(sys.modules, point.module, stand_in)
    # a base class may still define it (SFTTrainer's method removed leaves Trainer's): remove every definition
    while inspect.isclass(parent) and hasattr(parent, attr):
        owner = next(k for k in inspect.getmro(parent) if attr in vars(k))
        monkeypatch.delattr(owner, attr)
    assert check_extension_points() == [f"{point.name} (used by ConceptAwareSFTTrainer: {point.use}) is gone"]


@pytest.mark.parametrize("point", [p for p in EXTENSION_POINTS if p.source_mentions], ids=lambda p: p.qualname)
def test_a_hook_that_no_longer_makes_the_call_the_trainer_needs_is_named(monkeypatch, point):
    original = ep._resolve(point.module, point.qualname)
    ep._resolve.cache_clear()

    def stub(*args, **kwargs):  # same parameters, none of the calls
        return None

    stub.__signature__ = inspect.signature(original)
    monkeypatch.setattr(*_parent_and_attr(point), stub)
    problems = check_extension_points()
    assert len(problems) == 1 and problems[0].startswith(point.name + " ") and "no longer contains" in problems[0]
    assert all(repr(m) in problems[0] for m in point.source_mentions)


def test_a_dataclass_that_lost_a_field_is_named(monkeypatch):
    point = next(p for p in EXTENSION_POINTS if p.qualname == "DataCollatorForLanguageModeling")

    class Stub:  # the collator without return_position_ids
        pad_token_id = 0
        padding_free = False
        pad_to_multiple_of = None

        def torch_call(self, examples):
            return examples

    expected = f"{point.name} (used by ConceptAwareSFTTrainer: {point.use}) lost return_position_ids"
    assert ep.check_extension_point(point, Stub) == expected


def test_the_trainer_refuses_to_start_naming_the_changed_hook(monkeypatch):
    import transformers

    from procure_trl.training import ConceptAwareSFTTrainer

    def _get_num_items_in_batch(self, batch_samples, device, loss_kwargs=None):
        return None

    monkeypatch.setattr(transformers.Trainer, "_get_num_items_in_batch", _get_num_items_in_batch)
    with pytest.raises(RuntimeError, match=r"transformers\.Trainer\._get_num_items_in_batch .*changed its parameters "
                                           r"from \(self, batch_samples, device\) to \(self, batch_samples, device, "
                                           r"loss_kwargs\).*install versions in that range"):
        ConceptAwareSFTTrainer(model=None)


def test_every_extension_point_is_documented():
    text = DOCS.read_text()
    section = text.split("## Extension points", 1)[1].split("\n## ", 1)[0]
    missing = [p.name for p in EXTENSION_POINTS if f"`{p.name}`" not in section]
    assert not missing, f"docs/training.md 'Extension points' does not list {missing}"


def test_the_versions_named_in_the_error_are_the_bounds_in_setup_cfg():
    requires = SETUP.read_text()
    for package in ("trl", "transformers"):
        bound = re.search(rf"^\s+{package}(>=[\d.]+,<[\d.]+)\s*$", requires, re.M)
        assert bound, f"setup.cfg: {package} has no upper bound"
        specs = {spec for part in ep.tested_versions().split(" and ") if part.startswith(package)
                 for spec in part[len(package):].split(",")}
        assert specs == set(bound.group(1).split(",")), (package, ep.tested_versions())
