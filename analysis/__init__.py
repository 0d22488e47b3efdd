"""Reads MLflow (and anchor files) only: what users open rdc-sweep for.

Never imports ray, sweep, jobs, models, torch or compressai: a user on a laptop queries a
cluster's MLflow with this package alone (tests/analysis/test_imports.py proves it).

  store      an MLflow experiment's runs as long tables (fast SQL read, MlflowClient otherwise)
  runs       -> one tidy DataFrame, one row per run
  frontier   Pareto frontier, non-dominated ranks, normalised hypervolume
  query      the frontier query behind `rdc frontier` (and `frontier_table(...)` in Python)
  table1     the study's Table 1: rate savings per frontier row from its RD curve (`--table1`)
  curves     RD curves (bpp, PSNR) and their envelopes; anchors reads them from files
  classical  JPEG / WebP / AVIF curves measured with Pillow on the evaluation images
  bdrate     BD-rate via the bjontegaard package; savings   the study's Fig. 1/3 tables
  runtime    FLOPs vs runtime: correlations, per-device ranks, Kendall tau
  labels     metric names in words with units, for figures, headers and the report
  figures    the study's figures (PNG + SVG); page + report: the one-file HTML report
"""
