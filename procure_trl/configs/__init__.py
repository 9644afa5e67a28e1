"""The training recipes and experiment configs: the ones shipped with the package, reachable by name, and the one
YAML loader that reads every recipe and experiment config (:func:`load_yaml_config`).

``procure train --config cpu_smoke`` and ``procure experiment --config ablation`` find the files here, in an
installed wheel as in a checkout (where ``examples/`` and ``experiments/`` link to them). A path that exists
always wins over a name, so a user's own ``ablation.yaml`` in the working folder is the one read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from procure_trl.errors import UserError

__all__ = ["SHIPPED_DIR", "load_yaml_config", "resolve_config", "shipped_names"]

#: Where the shipped YAML files live: ``recipes/`` (procure train) and ``experiments/`` (procure experiment).
SHIPPED_DIR = Path(__file__).parent
Kind = Literal["recipes", "experiments"]

#: what each kind of config is called in messages, and the example a message points to
_WHAT = {"recipes": ("recipe", "examples/procure_qlora.yaml"),
         "experiments": ("experiment config", "experiments/ablation.yaml")}


def shipped_names(kind: Kind) -> list[str]:
    """The names of the shipped configs of ``kind`` (file names without ``.yaml``), sorted."""
    return sorted(path.stem for path in (SHIPPED_DIR / kind).glob("*.yaml"))


def resolve_config(kind: Kind, name_or_path: str) -> str:
    """The file ``name_or_path`` means: the path itself when it exists, else the shipped config of that name.

    A name may carry ``.yaml`` and the folder users know it from (``experiments/ablation.yaml`` names the
    shipped ``ablation`` when no such file exists here).

    Raises:
        UserError: neither a file nor a shipped name (the message lists the shipped names).
    """
    if os.path.exists(name_or_path):
        return name_or_path
    stem = Path(name_or_path).name.removesuffix(".yaml").removesuffix(".yml")
    shipped = SHIPPED_DIR / kind / f"{stem}.yaml"
    if shipped.is_file():
        return str(shipped)
    what = "recipe" if kind == "recipes" else "experiment config"
    raise UserError(f"{what} {name_or_path!r}: no such file, and no shipped {what} of that name "
                    f"(shipped: {', '.join(shipped_names(kind))})")


def load_yaml_config(kind: Kind, path: str) -> dict[str, Any]:
    """The ``field: value`` mapping of the recipe or experiment config file ``path``.

    Every problem with the file itself is one :class:`UserError` in one format, ``<what> '<path>' <problem>; <fix>``
    (``what``: recipe or experiment config): a missing file, text that is not YAML, YAML that is not a mapping.
    What the fields mean is the caller's to check.
    """
    import yaml

    what, example = _WHAT[kind]
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise UserError(f"{what} {path!r} does not exist; give the path of a YAML {what} (see {example})") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path!r} is a folder; give the path of a YAML {what} (see {example})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{what} {path!r} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path!r} must be a YAML mapping of field: value lines (see {example})")
    return data
