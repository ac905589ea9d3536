"""The analysis report in a real browser (Debian chromium through playwright), fully offline.

Every request that is not a local file is aborted and counted: the report must need none. The
charts must draw (plotly's SVG), the headline number and the taxonomy's zh and en labels must be
visible. Without chromium or playwright the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("VERBATIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        _unavailable(f"no chromium at {path} (apt-get install chromium, or set VERBATIM_CHROMIUM)")
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install playwright)")
    return path


def _fakes():
    """The analytics tests' stand-ins (tests/models/analytics/analytics_fakes.py)."""
    path = Path(__file__).parents[1] / "models" / "analytics" / "analytics_fakes.py"
    spec = importlib.util.spec_from_file_location("analytics_fakes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    from models.analytics.pipeline import analyze
    from models.analytics.report import render_report
    from models.taxonomy import default_taxonomy

    fakes = _fakes()
    analysis = analyze(fakes.make_records(100), fakes.fake_classify, outcome="nps", taxonomy=default_taxonomy(),
                       clusterer=fakes.KeywordClusterer(), cases=fakes.CASES)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(analysis), encoding="utf-8")
    return path, analysis


def test_the_report_renders_offline_with_charts_headline_and_bilingual_labels(chromium, report, tmp_path):
    from playwright.sync_api import sync_playwright

    path, analysis = report
    outside: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_selector("#chart-drivers svg.main-svg", timeout=30_000)
            charts = page.locator("div.plotly-graph-div").count()
            drawn = page.locator("div.plotly-graph-div svg.main-svg").count()
            headline = page.locator("#headline-number")
            headline_text, headline_visible = headline.inner_text(), headline.is_visible()
            driver_ticks = " ".join(page.locator("#chart-drivers .ytick text").all_text_contents())
            journey_ticks = " ".join(page.locator("#chart-journey .xtick text").all_text_contents())
            page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        finally:
            browser.close()

    assert outside == [], f"the report asked the network for {outside}"
    assert errors == []
    assert charts >= 8 and drawn >= charts  # every chart div holds plotly SVG
    assert headline_visible and headline_text == f"{analysis['overall']['nps']:,.1f}"
    assert "时效（负面）" in driver_ticks and "Timeliness (negative)" in driver_ticks
    assert "交付/履约" in journey_ticks and "Fulfil" in journey_ticks
    assert (tmp_path / "report.png").stat().st_size > 10_000
