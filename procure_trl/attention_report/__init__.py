"""How much attention completion queries put on perturbed tokens, layer by layer (``procure attention-report``).

* :mod:`.config`: :class:`AttentionReportConfig`, the options of the command;
* :mod:`.control`: the matched control (pure functions, no model);
* :mod:`.examples`: dataset rows -> token sequences with their query and key masks, and left-padded batches;
* :mod:`.measure`: per-layer attention mass through the trainer's :class:`~procure_trl.training.ConceptAttentionProbe`;
* :mod:`.report`: the run, ``attention_report.json`` and the per-layer plot.
"""

from procure_trl.attention_report.config import AttentionReportConfig

__all__ = ["AttentionReportConfig", "run_attention_report"]


def __getattr__(name: str):
    if name == "run_attention_report":  # imports torch: only when asked for
        from procure_trl.attention_report.report import run_attention_report

        return run_attention_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
