# Makes setuptools ship this folder; evaluate.load(procure_trl.metrics.module_path("ccs")) loads ccs.py.
