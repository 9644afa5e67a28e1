"""Publish the package's ``evaluate`` modules as metric Spaces on the Hub, so ``evaluate.load("<user>/ccs")`` works.

``evaluate.load("<namespace>/<name>")`` downloads ``<name>.py`` from the Space ``<namespace>/<name>``: the Space's
name must be the module's name. A Space holds the module folder as shipped in the package (``<name>.py`` and its
card ``README.md``, whose YAML makes it a Gradio Space), plus an ``app.py`` that serves the module's widget and a
``requirements.txt`` (the Space's build installs them). The module imports ``procure_trl``: whoever loads it needs
the package installed, as ``evaluate`` says when it is not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from procure_trl.errors import UserError
from procure_trl.metrics import METRIC_MODULES, module_path

__all__ = ["PublishMetricsConfig", "space_files", "publish_metric_space", "publish_metric_spaces"]

_APP_PY = """\
import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("{name}.py")
launch_gradio_widget(module)
"""


@dataclass
class PublishMetricsConfig:
    """What ``procure publish-metrics`` publishes.

    Parameters:
        namespace (`str`):
            Hub user or organisation; the Spaces are ``<namespace>/pass_at_k`` and ``<namespace>/ccs``.
        metrics (`list[str]`, *optional*, defaults to `["pass_at_k", "ccs"]`):
            The modules to publish.
        private (`bool`, *optional*, defaults to `False`):
            Create the Spaces private (ignored for Spaces that exist).
        requirement (`str`, *optional*, defaults to `"procure_trl"`):
            How the Space's build installs this package (a pip requirement line, e.g. a ``git+https://`` URL).
    """

    namespace: str = field(metadata={"help": "Hub user or organisation that receives the Spaces."})
    metrics: list[str] = field(
        default_factory=lambda: list(METRIC_MODULES), metadata={"help": "Metric modules to publish."}
    )
    private: bool = field(default=False, metadata={"help": "Create the Spaces private."})
    requirement: str = field(
        default="procure_trl", metadata={"help": "pip requirement line that installs procure_trl in the Space."}
    )

    def __post_init__(self) -> None:
        if not self.namespace or "/" in self.namespace:
            raise UserError(
                f"namespace={self.namespace!r}: give a Hub user or organisation name without '/', e.g. --namespace me"
            )
        unknown = [m for m in self.metrics if m not in METRIC_MODULES]
        if unknown or not self.metrics:
            raise UserError(f"metrics={self.metrics!r}: choose among {', '.join(METRIC_MODULES)}")


def space_files(name: str, requirement: str = "procure_trl") -> dict[str, bytes]:
    """The files of the metric Space of module ``name``: the module folder, ``app.py`` and ``requirements.txt``."""
    folder = module_path(name)
    files = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        # __init__.py only makes setuptools ship the folder; a Space needs the module and its card.
        if os.path.isfile(path) and entry != "__init__.py" and not entry.endswith((".pyc", ".pyo")):
            with open(path, "rb") as handle:
                files[entry] = handle.read()
    files["app.py"] = _APP_PY.format(name=name).encode()
    files["requirements.txt"] = f"evaluate\n{requirement}\n".encode()
    return files


def publish_metric_space(
    name: str, namespace: str, *, private: bool = False, requirement: str = "procure_trl", token: str | None = None
) -> str:
    """Create (or update) the Space ``<namespace>/<name>`` with the module's files; returns its repository id.

    The token comes from ``token``, else ``HF_TOKEN`` or ``hf auth login``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from procure_trl.hub import hub_operation

    api = HfApi(token=token)
    repo_id = f"{namespace}/{name}"
    operations = [CommitOperationAdd(path, data) for path, data in space_files(name, requirement).items()]
    with hub_operation(f"publishing the Space {repo_id}", "check the network and the token (`hf auth login` or "
                       "HF_TOKEN), then rerun"):
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.create_commit(repo_id, operations, commit_message=f"Upload the {name} metric module", repo_type="space")
    return repo_id


def publish_metric_spaces(config: PublishMetricsConfig, token: str | None = None) -> list[str]:
    """Publish every module of ``config``; returns the Space ids, in order. Offline, without a token or without
    the Hub, fails in one line before any request."""
    from procure_trl.hub import require_hub_push

    require_hub_push(f"{config.namespace}/{config.metrics[0]}", later="rerun when the Hub can be reached",
                     token=token)
    return [
        publish_metric_space(name, config.namespace, private=config.private, requirement=config.requirement,
                             token=token)
        for name in config.metrics
    ]

