"""Orchestration: YAML -> validated variants -> plan -> Ray Tune trials -> MLflow runs."""
