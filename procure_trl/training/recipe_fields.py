"""The fields a training recipe may set, read without importing TRL, transformers or torch.

``procure train`` reads a recipe into TRL's ``ScriptArguments``, :class:`ConceptAwareSFTConfig` (which
extends TRL's ``SFTConfig`` and transformers' ``TrainingArguments``) and TRL's ``ModelConfig``.
Importing them takes seconds to tens of seconds (torch), far too long to print ``--help`` or to tell a
user that ``concept_los_weight`` is a typo. So this module reads the dataclasses' fields (name, type,
default, help) from the installed source files with :mod:`ast`, following each class's bases through
its imports. If the source cannot be read that way, it falls back to importing the classes, which is
slow but always right; a test checks that both ways agree on the pinned versions.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
from pathlib import Path

__all__ = ["RecipeField", "RECIPE_GROUPS", "COMMON_FIELDS", "recipe_fields", "recipe_field_names"]

#: (group title, module, class): the dataclasses a recipe fills, in the order ``TrlParser`` gets them.
RECIPE_GROUPS = (
    ("dataset (TRL ScriptArguments)", "trl.scripts.utils", "ScriptArguments"),
    ("training (ConceptAwareSFTConfig: TRL SFTConfig + transformers TrainingArguments)",
     "procure_trl.training.config", "ConceptAwareSFTConfig"),
    ("model (TRL ModelConfig)", "trl.trainer.model_config", "ModelConfig"),
)

#: The TRL fields a ProCURE recipe sets most often (``procure train --help`` lists them; the rest are in
#: ``--show-options``).
COMMON_FIELDS = (
    "dataset_name", "dataset_train_split", "dataset_test_split",
    "model_name_or_path", "dtype", "load_in_4bit", "use_peft", "lora_r", "lora_alpha", "lora_target_modules",
    "output_dir", "max_length", "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
    "gradient_accumulation_steps", "gradient_checkpointing", "bf16", "logging_steps", "save_steps",
    "eval_strategy", "seed", "report_to", "push_to_hub", "hub_model_id",
)

@dataclasses.dataclass(frozen=True)
class RecipeField:
    """One recipe field: where it is declared and what ``--help`` shows for it."""

    name: str
    group: str
    owner: str
    """The class that declares it last (``ConceptAwareSFTConfig``, ``SFTConfig``, ``TrainingArguments``...)."""
    type: str
    default: str | None
    """The default as source text (``None``: the field has no default)."""
    help: str

    @property
    def is_bool(self) -> bool:
        return self.type.replace(" ", "") in ("bool", "bool|None", "Optional[bool]")


def _module_file(module: str) -> Path:
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)  # a top-level spec does not import the package
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(module)
    path = Path(spec.origin).parent.joinpath(*rest.split(".")) if rest else Path(spec.origin).parent
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@functools.cache
def _module_ast(module: str) -> ast.Module:
    return ast.parse(_module_file(module).read_text(encoding="utf-8"))


def _find_class(module: str, name: str, depth: int = 0) -> tuple[str, ast.ClassDef]:
    """The module that defines class ``name`` as seen from ``module`` (following imports and re-exports)."""
    tree = _module_ast(module)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is not None:
        return module, cls
    if depth < 4:
        # ``from .x import Name`` anywhere, also in the ``if TYPE_CHECKING:`` block of a lazy package __init__
        is_package = _module_file(module).name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
                alias = next(a for a in node.names if (a.asname or a.name) == name)
                if node.level:
                    base = module if is_package else module.rsplit(".", 1)[0]
                    base = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                return _find_class(source, alias.name, depth + 1)
    raise LookupError(f"cannot find class {name} from {module}")


def _text(node: ast.expr) -> str:
    """A help string: string constants (implicitly or explicitly concatenated), else the source text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ast.unparse(node)


def _default_text(node: ast.expr, scope: ast.AST) -> str:
    """A default as ``--help`` shows it; a name assigned constants in ``scope`` shows them ("a or b")."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Name):
        values = [
            str(n.value.value) for n in ast.walk(scope) if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant) and any(getattr(t, "id", None) == node.id for t in n.targets)
        ]
        if values:
            return " or ".join(dict.fromkeys(values))
    return ast.unparse(node)


def _factory_text(node: ast.expr) -> str:
    """``default_factory=list`` shows ``[]``, ``lambda: [1]`` shows ``[1]``; anything else its source."""
    if isinstance(node, ast.Name) and node.id in ("list", "dict", "set", "tuple"):
        return str({"list": [], "dict": {}, "set": set(), "tuple": ()}[node.id])
    if isinstance(node, ast.Lambda):
        try:
            return str(ast.literal_eval(node.body))
        except ValueError:
            pass
    return ast.unparse(node) + "()"


def _class_fields(module: str, name: str) -> dict[str, tuple[str, str, str | None, str]]:
    """name -> (owner, type, default, help) of the dataclass ``module.name``, bases first (as dataclasses do)."""
    module, cls = _find_class(module, name)
    fields: dict[str, tuple[str, str, str | None, str]] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id not in ("object", "Generic"):
            fields.update(_class_fields(module, base.id))
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        annotation = ast.unparse(node.annotation)
        if annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        default: str | None = None
        help_text = ""
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "field":
            keywords = {k.arg: k.value for k in value.keywords}
            if isinstance(init := keywords.get("init"), ast.Constant) and init.value is False:
                fields.pop(node.target.id, None)
                continue
            if "default" in keywords:
                default = _default_text(keywords["default"], cls)
            elif "default_factory" in keywords:
                default = _factory_text(keywords["default_factory"])
            metadata = keywords.get("metadata")
            if isinstance(metadata, ast.Dict):
                for key, item in zip(metadata.keys, metadata.values):
                    if isinstance(key, ast.Constant) and key.value == "help":
                        help_text = _text(item)
        elif value is not None:
            default = _default_text(value, cls)
        fields[node.target.id] = (name, annotation, default, " ".join(help_text.split()))
    return fields


def _fields_from_source() -> list[RecipeField]:
    out = []
    for group, module, name in RECIPE_GROUPS:
        for field_name, (owner, type_text, default, help_text) in _class_fields(module, name).items():
            out.append(RecipeField(field_name, group, owner, type_text, default, help_text))
    return out


def _fields_from_import() -> list[RecipeField]:
    import importlib

    out = []
    for group, module, name in RECIPE_GROUPS:
        cls = getattr(importlib.import_module(module), name)
        owners = {f: c.__name__ for c in reversed(cls.__mro__) for f in getattr(c, "__annotations__", {})}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = str(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                default = str(f.default_factory())
            else:
                default = None
            type_text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out.append(RecipeField(f.name, group, owners.get(f.name, name), type_text, default,
                                   " ".join(str(f.metadata.get("help", "")).split())))
    return out


@functools.lru_cache(maxsize=1)
def recipe_fields() -> tuple[RecipeField, ...]:
    """Every field a recipe may set, grouped as :data:`RECIPE_GROUPS` (fast: read from the source)."""
    try:
        return tuple(_fields_from_source())
    except (OSError, SyntaxError, LookupError, ModuleNotFoundError, ValueError):
        return tuple(_fields_from_import())


def recipe_field_names() -> frozenset[str]:
    return frozenset(f.name for f in recipe_fields())
