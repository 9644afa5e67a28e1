"""Metric estimators (pure Python). The `evaluate` modules under evaluation/metrics/ are thin wrappers over these."""
