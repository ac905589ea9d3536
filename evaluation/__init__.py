"""Evaluation: metrics, peers, the product and recipe suites, and the generated report.

>>> from evaluation import run_evaluation
>>> run_evaluation(predict_fn=None, out_dir="evaluation")  # peers only
"""

from __future__ import annotations

from evaluation.run import SUITES, run_evaluation

__all__ = ["SUITES", "run_evaluation"]
