"""The evaluation harness behind ``procure evaluate``: prompts -> generate -> execute -> metrics -> report.

``config`` (what to run), ``counterfactuals`` (reading ``procure perturb`` output), ``prompts`` (where programs
are cut), ``sampling`` (model backends that sample completions, and their cache), ``run`` (orchestration), ``report`` and ``plots``.
"""
