# Makes setuptools ship this folder; evaluate.load(procure_trl.metrics.module_path("pass_at_k")) loads pass_at_k.py.
