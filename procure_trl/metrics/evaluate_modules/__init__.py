"""The ``evaluate`` modules shipped with procure_trl, one folder each; load them by path with
:func:`procure_trl.metrics.module_path`. These ``__init__`` files only make setuptools ship the folders."""
