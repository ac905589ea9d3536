"""Active-learning scores: the zero-shot prior of the real default model, and what each score
says about a classification (uncertainty, disagreement, rarity, language interleaving)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.review import (
    TopicPrior,
    disagreement,
    has_base_encoder,
    interleave,
    rarity,
    topic_prior,
    uncertainty,
)
from nlp.errors import ModelError

ABOUT = [
    ("快递太慢了，等了五天才到", "delivery.timeliness"),
    ("衣服质量很好，面料舒服", "product.quality"),
    ("退款申请了一周还没到账", "aftersales.returns"),
    ("The flight was delayed three hours and nobody told us", "delivery.timeliness"),
    ("Room was dirty and the sheets had stains", "environment.cleanliness"),
    ("They charged me twice for the same order", "billing.charges"),
    ("The app keeps crashing when I try to pay", "digital.usability"),
]  # fmt: skip


def _result(*topics: str, conf: float = 0.9) -> dict:
    return {"sentiment": {"label": "negative", "confidence": 0.95, "uncertain": False},
            "topics": [{"id": t, "polarity": "negative", "confidence": conf,
                        "polarity_confidence": 0.95, "uncertain": False} for t in topics],
            "touchpoints": []}  # fmt: skip


@pytest.fixture(scope="module")
def unmerged(base_encoder_dir: Path):
    from models.classifier import default_model_dir
    from models.classifier.model import CemClassifier

    return CemClassifier.from_pretrained(default_model_dir(), base_dir=base_encoder_dir).eval()


@pytest.fixture(scope="module")
def prior(unmerged) -> TopicPrior:
    return topic_prior(unmerged, [text for text, _ in ABOUT])


@pytest.mark.slow
def test_the_zero_shot_prior_ranks_the_topic_a_verbatim_is_about_first(prior: TopicPrior) -> None:
    tops = [prior.top(i, 1)[0][0] for i in range(len(ABOUT))]
    assert tops == [topic for _, topic in ABOUT]


@pytest.mark.slow
def test_a_prediction_the_prior_contradicts_scores_high_and_one_it_backs_scores_zero(
    prior: TopicPrior,
) -> None:
    late = 0  # 快递太慢了，等了五天才到
    agrees = disagreement(_result("delivery.timeliness"), prior, late)
    assert agrees.score == 0.0 and "agrees" in agrees.detail
    wrong = disagreement(_result("product.design"), prior, late)
    assert wrong.score > 0.5 and "delivery.timeliness" in wrong.detail
    assert "product.design" in wrong.detail
    silent = disagreement(_result(), prior, 2)  # 退款… with no topic predicted
    assert silent.score > 0.2 and "aftersales.returns" in silent.detail and "no topic" in silent.detail


@pytest.mark.slow
def test_a_merged_classifier_needs_the_base_encoder_and_then_gives_the_same_prior(
    unmerged, prior: TopicPrior, encoder
) -> None:
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier

    merged = Classifier.load(default_model_dir(), base_dir=encoder.path)
    assert has_base_encoder(unmerged) and not has_base_encoder(merged)
    with pytest.raises(ModelError, match="embed="):
        topic_prior(merged, ["快递太慢了"])
    cfg = merged.config
    same = topic_prior(
        merged, [t for t, _ in ABOUT],
        embed=lambda texts: encoder.encode(texts, prefix=cfg.text_prefix, max_length=cfg.max_length),
    )  # fmt: skip
    assert np.allclose(same.scores, prior.scores, atol=2e-3)


def test_an_unsure_topic_is_more_uncertain_than_a_confident_one() -> None:
    sure, unsure = uncertainty(_result("price.value", conf=0.97)), uncertainty(_result("price.value", conf=0.53))
    assert unsure.score > 0.8 > 0.3 > sure.score
    assert "price.value" in unsure.detail and "0.53" in unsure.detail
    flagged = _result("service.attitude")
    flagged["sentiment"] = {"label": "neutral", "confidence": 0.58, "uncertain": True}
    signal = uncertainty(flagged)
    assert signal.score >= 0.6 and "sentiment neutral at confidence 0.58" == signal.detail


def test_nodes_with_few_labels_count_as_rare() -> None:
    counts = {"delivery.timeliness": 40, "price.promotion": 1}
    assert rarity(_result("delivery.timeliness"), counts).score == 0.0
    rare = rarity(_result("delivery.timeliness", "price.promotion"), counts)
    assert rare.score == pytest.approx(0.95) and rare.detail == "price.promotion has 1 label so far"
    assert rarity(_result(), counts).score == 0.0


def test_languages_take_turns_zh_first() -> None:
    assert interleave({"en": ["e1", "e2", "e3"], "zh": ["z1"], "unknown": ["u1"]}) == [
        "z1", "e1", "u1", "e2", "e3"
    ]  # fmt: skip
