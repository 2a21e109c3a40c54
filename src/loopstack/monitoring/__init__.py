"""Monitoring: drift between a reference and a window of predictions, or any two tables.

``drift(reference, current)`` tests every column (KS for numbers, chi-squared on the
contingency table for categories), corrects the p-values across columns, asks for a
practically meaningful effect at large samples, and answers a ``DriftReport``.

>>> report = ls.monitoring.drift(train_df, window_df)
>>> print(report.render())
"""

from loopstack.monitoring._drift import DriftConfig, drift
from loopstack.monitoring._report import ColumnDrift, DriftReport

__all__ = ["ColumnDrift", "DriftConfig", "DriftReport", "drift"]
