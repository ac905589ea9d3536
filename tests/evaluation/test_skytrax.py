"""The Skytrax driver study: comparison logic on small synthetic frames, and the real files' schema."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from evaluation.skytrax import (
    ASPECTS,
    FILES,
    compare,
    load_reviews,
    render_skytrax,
    run_skytrax,
    subrating_importance,
    text_importance,
)

LOUNGE_WORDS = {  # a stand-in classifier: cue word -> (topic, polarity)
    "dirty": ("environment.cleanliness", "negative"),
    "spotless": ("environment.cleanliness", "positive"),
    "rude": ("service.attitude", "negative"),
    "stale": ("product.quality", "negative"),
    "crowded": ("environment.facilities", "negative"),
}


def _fake_classify(items):
    out = []
    for item in items:
        topics = [{"id": t, "polarity": p, "confidence": 0.9}
                  for word, (t, p) in LOUNGE_WORDS.items() if word in item["text"].lower()]
        out.append({"id": item["id"], "lang": "en", "topics": topics,
                    "sentiment": {"label": "neutral", "score": 0.0, "confidence": 0.5}})
    return out


def _lounge_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Reviews where cleanliness drives the overall rating most, then catering/bar, then staff."""
    rng = np.random.default_rng(seed)
    sub = {c: rng.integers(1, 6, n).astype(float) for c in ASPECTS["lounge"]}
    overall = (0.5 * sub["cleanliness_rating"] + 0.25 * (sub["catering_rating"] + sub["bar_beverages_rating"])
               + 0.1 * sub["staff_service_rating"] + 0.05 * sub["comfort_rating"] + rng.normal(0, 0.3, n))
    overall = np.clip(np.round(overall), 1, 5)
    texts = []
    for i in range(n):
        words = ["The lounge was fine."]
        if sub["cleanliness_rating"][i] <= 2:
            words.append("Toilets were dirty.")
        if sub["cleanliness_rating"][i] == 5:
            words.append("Spotless.")
        if sub["catering_rating"][i] <= 2 and rng.random() < 0.7:
            words.append("Sandwiches were stale.")
        if sub["staff_service_rating"][i] == 1 and rng.random() < 0.5:
            words.append("Staff were rude.")
        texts.append(" ".join(words))
    return pd.DataFrame({"content": texts, "overall_rating": overall, **sub})


def test_compare_counts_only_aspects_both_rankings_cover():
    truth = {"a": {"importance": 0.5}, "b": {"importance": 0.3}, "c": {"importance": 0.2}, "d": {"importance": 0.1}}
    same = {"a": {"importance": 0.4}, "b": {"importance": 0.35}, "c": {"importance": 0.1}, "e": {"importance": 0.9}}
    result = compare(truth, same)
    assert result["aspects"] == ["a", "b", "c"] and result["n_aspects"] == 3
    assert result["spearman"] == pytest.approx(1.0)
    reverse = {"a": {"importance": 0.1}, "b": {"importance": 0.2}, "c": {"importance": 0.3}, "d": {"importance": 0.4}}
    assert compare(truth, reverse)["spearman"] == pytest.approx(-1.0)
    assert compare(truth, {"z": {"importance": 1.0}})["spearman"] is None


def test_subratings_rank_the_aspect_that_drives_the_overall_rating_first():
    frame = _lounge_frame(1500)
    frame.loc[frame.index[:100], "wifi_connectivity_rating"] = np.nan  # incomplete rows are left out
    truth = subrating_importance(frame, ASPECTS["lounge"], n_bootstrap=50)
    shares = {a: v["importance"] for a, v in truth["aspects"].items()}
    assert truth["n"] == 1400 and truth["method"] == "shapley"
    assert max(shares, key=shares.get) == "environment.cleanliness"
    assert shares["product.quality"] > shares["service"] > shares["environment.facilities"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_text_ranking_follows_what_the_texts_say():
    frame = _lounge_frame(1200, seed=1)
    results = _fake_classify([{"id": str(i), "text": t} for i, t in enumerate(frame["content"])])
    text = text_importance(results, frame["overall_rating"].to_numpy(), list(dict.fromkeys(ASPECTS["lounge"].values())),
                           n_bootstrap=50)
    shares = {a: v["importance"] for a, v in text["aspects"].items()}
    assert max(shares, key=shares.get) == "environment.cleanliness"
    assert shares["product.quality"] > shares["service"]
    assert "environment.facilities" not in shares  # never mentioned in these texts
    assert text["mentions"]["environment.cleanliness"] > 300


def test_run_on_a_small_copy_of_the_data_writes_no_texts(tmp_path):
    lounge = _lounge_frame(400, seed=2)
    seat_cols = list(ASPECTS["seat"])
    rng = np.random.default_rng(3)
    seat = pd.DataFrame({c: rng.integers(1, 6, 300).astype(float) for c in seat_cols})
    seat[["power_supply_rating", "seat_storage_rating"]] = np.nan  # sparse in the real file too
    seat["overall_rating"] = np.clip(np.round(2 * seat["seat_legroom_rating"] + rng.normal(0, 1, 300)), 1, 10)
    seat["content"] = np.where(seat["seat_legroom_rating"] <= 2, "Cramped seat, rude crew", "OK flight")
    for name, frame in (("lounge", lounge), ("seat", seat)):
        path = tmp_path / FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            frame.to_csv(fh, index=False)
    result = run_skytrax(_fake_classify, data_dir=tmp_path, max_reviews=250, n_bootstrap=20)
    lounge_result = result["files"]["lounge"]
    assert lounge_result["classified"] == 250
    assert lounge_result["comparison"]["n_aspects"] == 3  # facilities never appears in the texts
    assert result["files"]["seat"]["subratings"]["dropped"] == ["seat_storage_rating", "power_supply_rating"]
    check = lounge_result["polarity_check"]["environment.cleanliness"]
    assert check["negative"]["mean"] < check["positive"]["mean"]
    dumped = json.dumps(result, allow_nan=False)
    assert "Toilets were dirty" not in dumped and "Spotless" not in dumped
    lines = render_skytrax(result)
    assert any("Pooled Spearman" in line for line in lines)
    assert any(line.startswith("| environment.cleanliness |") for line in lines)


def test_aspects_are_default_taxonomy_nodes_and_do_not_overlap():
    from models.taxonomy import default_taxonomy

    taxonomy = default_taxonomy()
    for name, mapping in ASPECTS.items():
        aspects = set(mapping.values())
        assert aspects <= {t.id for t in taxonomy.topics}, name
        for a in aspects:
            assert not any(b != a and b.startswith(a + ".") for b in aspects), (name, a)


@pytest.mark.data
def test_real_skytrax_files_have_the_overall_and_sub_rating_columns(shared_data):
    lounge = load_reviews("lounge", shared_data)
    seat = load_reviews("seat", shared_data)
    assert len(lounge) == 2264 and len(seat) == 1258
    for frame, name in ((lounge, "lounge"), (seat, "seat")):
        ratings = frame[list(ASPECTS[name])]
        assert ratings.min().min() >= 1 and ratings.max().max() <= 5  # 0 was "not rated", now empty
        assert frame["content"].str.len().median() > 200
    assert (lounge["overall_rating"] <= 5).mean() > 0.95  # the few 6-10 values are left out
    assert seat["overall_rating"].dropna().between(1, 10).all()
    assert seat["power_supply_rating"].notna().mean() < 0.5  # dropped by the study as too sparse
