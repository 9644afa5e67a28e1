"""How much attention completion queries put on perturbed tokens, layer by layer (``procure attention-report``).

* :mod:`.config`: :class:`AttentionReportConfig`, the options of the command;
* :mod:`.control`: the matched control (pure functions, no model);
* :mod:`.examples`: dataset rows -> token sequences with their query and key masks, and left-padded batches;
* :mod:`.measure`: per-layer attention mass through the trainer's :class:`~procure_trl.training.ConceptAttentionProbe`;
* :mod:`.report`: the run, ``attention_report.json`` and the per-layer plot.
"""

from procure_trl._lazy import lazy_exports

# the report imports torch: resolved only when asked for
_EXPORTS = {
    "AttentionReportConfig": "procure_trl.attention_report.config",
    "run_attention_report": "procure_trl.attention_report.report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
