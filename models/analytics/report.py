"""The analysts' HTML report: one self-contained file that opens offline.

``render_report(analysis)`` takes the dict of :func:`models.analytics.pipeline.analyze` and returns
HTML with plotly.js inlined once (no outside scripts, styles or fonts): the headline score, the
driver chart with bootstrap confidence intervals, the topic x sentiment heatmap, the touchpoint
journey, root causes of the top negative drivers, issue clusters, segment drill-downs, trends and
support-case resolution. Taxonomy labels show in Chinese and English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_report"]

TEMPLATES = Path(__file__).with_name("templates")
NEGATIVE, POSITIVE, NEUTRAL, MUTED = "#c0392b", "#1e8449", "#7f8c8d", "#b2bec3"
_CONFIG = {"displaylogo": False, "responsive": True}
_OUTCOME_NAMES = {
    "nps": ("净推荐值", "NPS"), "csat": ("满意度", "CSAT"), "ces": ("费力度", "CES"),
    "rating": ("评分", "Rating"), "recommend": ("推荐率", "Recommend"),
}


def _bi(label: Mapping[str, str] | None, fallback: str = "", sep: str = "<br>") -> str:
    """``"中文<br>English"`` (one of them when both are the same)."""
    if not label:
        return fallback
    zh, en = label.get("zh") or fallback, label.get("en") or fallback
    return zh if zh == en else f"{zh}{sep}{en}"


def _html(fig: Any, div_id: str, height: int) -> Any:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      font={"family": "system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', "
                                      "'Noto Sans CJK SC', 'WenQuanYi Zen Hei', sans-serif"})
    from markupsafe import Markup

    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG))


def _drivers_fig(drivers: Sequence[Mapping[str, Any]], top: int = 15) -> str | None:
    import plotly.graph_objects as go

    rows = [d for d in sorted(drivers, key=lambda d: d.get("rank") or 1e9) if d.get("importance") is not None][:top]
    if not rows:
        return None
    rows = rows[::-1]
    imp = [d["importance"] for d in rows]
    lo = [max(0.0, d["importance"] - d["ci"][0]) if d.get("ci") else 0.0 for d in rows]
    hi = [max(0.0, d["ci"][1] - d["importance"]) if d.get("ci") else 0.0 for d in rows]
    colours = [MUTED if d.get("low_support") else NEGATIVE if (d.get("impact") or 0) < 0 else POSITIVE for d in rows]
    fig = go.Figure(go.Bar(
        x=imp, y=[_bi(d.get("label"), d["driver"]) for d in rows], orientation="h", marker_color=colours,
        error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": "#2d3436"},
        customdata=[[d.get("impact"), d.get("support"), d["driver"], d.get("rank")] for d in rows],
        hovertemplate="%{customdata[2]}<br>importance %{x:.3f}<br>impact %{customdata[0]}<br>"
                      "support %{customdata[1]}<br>rank %{customdata[3]}<extra></extra>",
    ))
    fig.update_layout(title="驱动因素重要性（95% 置信区间）/ Driver importance (95% CI)",
                      xaxis_title="share of explained variance / 解释方差占比")
    return _html(fig, "chart-drivers", 120 + 44 * len(rows))


def _heatmap_fig(heatmap: Mapping[str, Any]) -> str | None:
    import plotly.graph_objects as go

    if not heatmap.get("rows"):
        return None
    counts = heatmap["counts"]
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    fig = go.Figure(go.Heatmap(
        z=shares, text=counts, texttemplate="%{text}", colorscale="RdYlGn", zmin=0, zmax=1, showscale=False,
        x=["负面<br>negative", "中性<br>neutral", "正面<br>positive"],
        y=[_bi(lab, rid, " / ") for lab, rid in zip(heatmap["labels"], heatmap["rows"], strict=True)],
        hovertemplate="%{y}<br>%{x}: %{text} mentions (%{z:.0%})<extra></extra>",
    ))
    fig.update_traces(colorscale=[[0, "#fdecea"], [1, "#c0392b"]])
    fig.update_layout(title="话题 × 情感 / Topic × sentiment", yaxis_autorange="reversed")
    return _html(fig, "chart-heatmap", 140 + 28 * len(counts))


def _journey_fig(touchpoints: Sequence[Mapping[str, Any]]) -> str | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not touchpoints:
        return None
    x = [f"{t['stage']}. {_bi(t.get('label'), t['name'])}" for t in touchpoints]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=x, y=[t["volume"] for t in touchpoints], name="提及量 volume", marker_color="#74b9ff",
                         customdata=[[t.get("outcome"), t.get("impact")] for t in touchpoints],
                         hovertemplate="%{x}<br>volume %{y}<br>score among mentioners %{customdata[0]}<br>"
                                       "impact %{customdata[1]}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[100 * t["sentiment"].get("negative", 0) for t in touchpoints],
                             name="负面占比 % negative", mode="lines+markers", line_color=NEGATIVE), secondary_y=True)
    fig.update_yaxes(title_text="提及量 volume", secondary_y=False)
    fig.update_yaxes(title_text="负面占比 % negative", range=[0, 100], secondary_y=True)
    fig.update_layout(title="客户旅程 / Customer journey", legend={"orientation": "h", "y": -0.25})
    return _html(fig, "chart-journey", 420)


def _bar_fig(labels: list[str], values: list[float], div_id: str, title: str, height: int | None = None,
             colour: str = NEGATIVE, hover: str = "%{y}: %{x}<extra></extra>") -> str:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=values[::-1], y=labels[::-1], orientation="h", marker_color=colour, hovertemplate=hover))
    fig.update_layout(title=title)
    return _html(fig, div_id, height or 110 + 34 * len(labels))


def _trend_fig(rows: Sequence[Mapping[str, Any]], div_id: str, title: str, share_name: str) -> str | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        return None
    x = [r["period"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x + x[::-1], y=[100 * r["ci"][1] for r in rows] + [100 * r["ci"][0] for r in rows][::-1],
                             fill="toself", fillcolor="rgba(192,57,43,0.15)", line={"width": 0}, hoverinfo="skip",
                             name="95% CI", showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=[100 * r["share"] for r in rows], name=share_name, mode="lines+markers",
                             line_color=NEGATIVE, customdata=[r["n"] for r in rows],
                             hovertemplate="%{x}: %{y:.1f}% of %{customdata}<extra></extra>"))
    if any(r.get("headline") is not None for r in rows):
        fig.add_trace(go.Scatter(x=x, y=[r.get("headline") for r in rows], name="得分 score", mode="lines+markers",
                                 line={"color": "#2d3436", "dash": "dot"}), secondary_y=True)
    fig.update_layout(title=title, legend={"orientation": "h", "y": -0.3}, xaxis_type="category")
    return _html(fig, div_id, 340)


def _excerpt(example: Mapping[str, Any], width: int = 360) -> dict[str, str]:
    """The text around the evidence span as ``before``/``mark``/``after`` (escaped by the template)."""
    text = example["text"]
    ev = example.get("evidence") or None
    if not ev or not (0 <= ev["start"] < ev["end"] <= len(text)):
        cut = text if len(text) <= width else text[:width] + "…"
        return {"before": cut, "mark": "", "after": ""}
    start, end = ev["start"], ev["end"]
    room = max(0, width - (end - start)) // 2
    lo, hi = max(0, start - room), min(len(text), end + room)
    return {"before": ("…" if lo else "") + text[lo:start], "mark": text[start:end],
            "after": text[end:hi] + ("…" if hi < len(text) else "")}


def _root_cause_view(rc: Mapping[str, Any], n: int) -> dict[str, Any]:
    subs = rc.get("sub_issues") or []
    sub_html = _bar_fig([_bi(s.get("label"), s["id"], " / ") for s in subs], [s["count"] for s in subs],
                        f"chart-rc{n}-sub", "子问题 / Sub-issues", colour="#e67e22") if subs else None
    examples = {lang: [{**ex, **_excerpt(ex)} for ex in items] for lang, items in (rc.get("examples") or {}).items()}
    trend = _trend_fig(rc.get("trend") or [], f"chart-rc{n}-trend", "趋势 / Trend", "占比 % of records")
    return {**rc, "sub_html": sub_html, "examples_view": examples, "trend_html": trend}


def _segments_view(segments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n, seg in enumerate(segments):
        vals = [v for v in seg["values"] if v.get("headline") is not None][:25]
        html = _bar_fig([str(v["value"]) for v in vals], [v["headline"] for v in vals], f"chart-seg{n}",
                        f"{seg['field']}: 得分 / score by value", colour="#0984e3",
                        hover="%{y}: %{x}<extra></extra>") if vals else None
        out.append({**seg, "chart": html})
    return out


def _overall_trend(trends: Mapping[str, Any]) -> str | None:
    return _trend_fig(trends.get("overall") or [], "chart-trend", "整体趋势 / Overall trend (负面占比 % negative, 得分 score)",
                      "负面占比 % negative")


def _cases_fig(cases: Mapping[str, Any] | None) -> str | None:
    if not cases or not cases.get("by_topic"):
        return None
    rows = cases["by_topic"][:20]
    return _bar_fig([_bi(r.get("label"), r["topic"], " / ") for r in rows],
                    [round(100 * (r["resolved_share"] or 0), 1) for r in rows], "chart-cases",
                    "已解决占比 / Resolved share (%)", colour=POSITIVE)


def _clusters_fig(clusters: Sequence[Mapping[str, Any]]) -> str | None:
    rows = sorted(clusters, key=lambda c: -c.get("size", 0))[:20]
    if not rows:
        return None
    return _bar_fig([f"{c['id']}: {c.get('label', '')}" for c in rows], [c.get("size", 0) for c in rows],
                    "chart-clusters", "问题簇规模 / Issue cluster sizes", colour="#6c5ce7")


def render_report(analysis: Mapping[str, Any]) -> str:
    """Self-contained, offline HTML for an analysis (see :func:`models.analytics.pipeline.analyze`)."""
    import jinja2
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, d=1: "–" if v is None else f"{100 * v:.{d}f}%"
    env.filters["num"] = lambda v, d=2: "–" if v is None else (f"{v:,.{d}f}" if isinstance(v, float) else f"{v:,}")
    outcome = analysis["outcome"]
    zh, en = _OUTCOME_NAMES.get(outcome, (outcome, outcome))
    charts = {
        "drivers": _drivers_fig(analysis.get("drivers") or []),
        "heatmap": _heatmap_fig(analysis.get("heatmap") or {}),
        "journey": _journey_fig(analysis.get("touchpoints") or []),
        "clusters": _clusters_fig(analysis.get("clusters") or []),
        "trend": _overall_trend(analysis.get("trends") or {}),
        "cases": _cases_fig(analysis.get("cases")),
    }
    return env.get_template("report.html.j2").render(
        a=analysis, outcome_zh=zh, outcome_en=en, headline=(analysis.get("overall") or {}).get(outcome),
        charts=charts,
        root_causes=[_root_cause_view(rc, n) for n, rc in enumerate(analysis.get("root_causes") or [])],
        segments=_segments_view(analysis.get("segments") or []),
        verbatims=analysis.get("verbatims") or {},
        plotly_js=Markup(get_plotlyjs()),
    )
