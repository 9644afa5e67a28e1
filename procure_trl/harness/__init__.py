"""The evaluation harness behind ``procure evaluate``: prompts -> generate -> execute -> metrics -> report.

``config`` (what to run), ``counterfactuals`` (reading ``procure perturb`` output), ``prompts`` (where programs
are cut), ``generation`` (backends and the completion cache), ``run`` (orchestration), ``report`` and ``plots``.
"""
