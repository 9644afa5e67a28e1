"""The evaluation stage behind ``procure evaluate`` and ``procure compare``.

``config`` (what to run), ``guards`` (what is refused before a model loads), ``selection`` (tasks and cut rows),
``prompts`` and ``truncation`` (where programs are cut and where completions end), ``sampling`` (backends and the
completion cache), ``model_loading``, ``scoring`` (execution, pass@k, CCS), ``results`` (the report's types),
``run`` (the stages in order), ``report`` and ``plots`` (what is written), ``compare`` (runs side by side).
"""
