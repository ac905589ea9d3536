"""The HTML report: self-contained and offline, bilingual, safe with hostile verbatims.

The analysis comes from ``analyze`` with keyword stand-ins for the model (rendering does not
depend on it); the browser test in tests/pages checks that the charts actually draw."""

from __future__ import annotations

import re

import pytest
from analytics_fakes import CASES, KeywordClusterer, fake_classify, make_records

from models.analytics.pipeline import analyze
from models.analytics.report import render_report
from models.taxonomy import default_taxonomy
from nlp.records import Record, Rejection

HOSTILE = 'Delivery was late <script>alert("x")</script> & slow'


@pytest.fixture(scope="module")
def analysis() -> dict:
    records = make_records(100)
    records[0] = Record(id="evil", text=HOSTILE, line=2, nps=0.0, metadata=records[0].metadata, ts=records[0].ts)
    return analyze(records, fake_classify, outcome="nps", taxonomy=default_taxonomy(), clusterer=KeywordClusterer(),
                   cases=CASES, rejected=[Rejection(line=41, id="x", reason="nps 11 is out of range 0-10")])


@pytest.fixture(scope="module")
def html(analysis) -> str:
    return render_report(analysis)


def test_the_report_needs_nothing_from_outside(html):
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    assert html.count("<script") >= 6  # plotly.js once plus one per chart
    plotly_bundles = html.count("plotly.js v")  # plotly.js names its version in its banner once
    assert plotly_bundles == 1


def test_headline_drivers_and_bilingual_labels_are_shown(analysis, html):
    assert f'id="headline-number">{analysis["overall"]["nps"]:,.1f}<' in html
    for chart in ("chart-drivers", "chart-heatmap", "chart-journey", "chart-trend", "chart-cases", "chart-clusters"):
        assert f'id="{chart}"' in html, chart
    assert "时效（负面）" in html and "Timeliness (negative)" in html  # taxonomy names in zh and en
    assert "交付/履约" in html and "Fulfil" in html  # journey stage names
    assert "北京朝阳" in html  # the store where late delivery over-indexes
    assert "nps 11 is out of range 0-10" in html  # rejected records are listed


def test_evidence_is_highlighted_and_verbatims_are_escaped(html):
    assert "<mark>" in html
    assert '<script>alert("x")' not in html and "&lt;script&gt;alert(" in html


def test_a_report_without_time_segments_or_cases_still_renders():
    records = [Record(id=f"r{i}", text=t, line=i + 2, nps=float(s)) for i, (t, s) in
               enumerate([("配送太慢了", 2), ("Great quality!", 10), ("质量很好", 9), ("Shipping was slow", 4)] * 10)]
    a = analyze(records, fake_classify, outcome="nps", taxonomy=default_taxonomy(), clusterer=KeywordClusterer())
    out = render_report(a)
    assert "The records have no ts field" in out and "No metadata field with 2–50 distinct values" in out
    assert 'id="cases"' not in out and 'id="chart-drivers"' in out


def test_cases_without_a_topic_are_listed_by_their_placeholder():
    """A support case opened on a record with no topic still shows in the resolution view (it
    once made the report fail: the service answered 500)."""
    records = make_records(40)
    cases = [*CASES, {"topic": None, "priority": "P2", "status": "resolved", "resolution_code": "refund",
                      "created_at": "2024-03-05T09:00:00", "resolved_at": "2024-03-05T15:00:00"}]
    a = analyze(records, fake_classify, outcome="nps", taxonomy=default_taxonomy(), clusterer=KeywordClusterer(),
                cases=cases)
    out = render_report(a)
    assert 'id="cases"' in out and "(none)" in out and "时效" in out
