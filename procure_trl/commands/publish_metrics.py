"""``procure publish-metrics --namespace USER``: publish the ``pass_at_k`` and ``ccs`` modules as metric Spaces.

Afterwards anyone with ``procure_trl`` installed can ``evaluate.load("USER/ccs")``. The token comes from
``HF_TOKEN`` or ``hf auth login``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from procure_trl.metrics import METRIC_MODULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.metrics.spaces import PublishMetricsConfig

    fields = {f.name: f for f in dataclasses.fields(PublishMetricsConfig)}
    parser.add_argument("--namespace", required=True, help=fields["namespace"].metadata["help"])
    parser.add_argument("--metrics", default=",".join(METRIC_MODULES),
                        help=fields["metrics"].metadata["help"] + " Comma-separated (default %(default)s).")
    parser.add_argument("--private", action="store_true", help=fields["private"].metadata["help"])
    parser.add_argument("--requirement", default=fields["requirement"].default,
                        help=fields["requirement"].metadata["help"] + " (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from procure_trl.metrics.spaces import PublishMetricsConfig, publish_metric_spaces

    try:
        config = PublishMetricsConfig(
            namespace=args.namespace,
            metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
            private=args.private,
            requirement=args.requirement,
        )
    except ValueError as exc:
        print(f"procure publish-metrics: error: {exc}", file=sys.stderr)
        return 2
    for repo_id in publish_metric_spaces(config):
        print(f'published the Space {repo_id}: evaluate.load("{repo_id}")')
    return 0
