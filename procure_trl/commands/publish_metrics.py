"""``procure publish-metrics --namespace USER``: publish the ``pass_at_k`` and ``ccs`` modules as metric Spaces.

Every option is a field of :class:`~procure_trl.metrics.spaces.PublishMetricsConfig`. Afterwards anyone with
``procure_trl`` installed can ``evaluate.load("USER/ccs")``. The token comes from ``HF_TOKEN`` or ``hf auth login``.
"""

from __future__ import annotations

import argparse

from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError
from procure_trl.metrics.spaces import PublishMetricsConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PublishMetricsConfig)


def run(args: argparse.Namespace) -> int:
    from procure_trl.metrics.spaces import publish_metric_spaces

    try:
        config = PublishMetricsConfig(**config_kwargs(PublishMetricsConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    for repo_id in publish_metric_spaces(config):
        print(f'published the Space {repo_id}: evaluate.load("{repo_id}")')
    return 0
