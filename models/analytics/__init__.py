"""Analytics over classified feedback: outcomes, drivers, issue clusters, root causes, reports.

Submodules are imported on use (``from models.analytics.pipeline import analyze``) so that
importing the package stays cheap and never loads torch or plotly.
"""

from __future__ import annotations
