"""Reads MLflow (and anchor files) only: runs -> DataFrame, frontier, figures, report.

Never imports ray, sweep or jobs: a user on a laptop queries a cluster's MLflow with this
package alone.
"""
