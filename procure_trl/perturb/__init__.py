"""The perturb stage: problems in, counterfactual rows out.

The row record and its writer (:mod:`.records`), the rule engine over the static-analysis perturbations
(:mod:`.engine`, with per-problem bounds in :mod:`.bounded`), the LLM generator (:mod:`.llm`) and the per-batch
path over any dataset (:mod:`.scale`).
"""
