"""multitask_loss: each item teaches only what it has targets for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.loss import multitask_loss
from training.targets import POL_INDEX, SENT_INDEX, TrainItem

N_TOPICS, N_TPS = 5, 3


def item(*, sentiment: str | None = None, binary: bool = False, topics: dict[int, float] | None = None,
         groups=(), polarity=(), tps: dict[int, float] | None = None) -> TrainItem:
    tt, tm = np.zeros(N_TOPICS, np.float32), np.zeros(N_TOPICS, bool)
    for i, v in (topics or {}).items():
        tt[i], tm[i] = v, True
    pt, pm = np.zeros(N_TPS, np.float32), np.zeros(N_TPS, bool)
    for i, v in (tps or {}).items():
        pt[i], pm[i] = v, True
    return TrainItem(
        text="x", source="test", sentiment=SENT_INDEX[sentiment] if sentiment else -1, sentiment_binary=binary,
        topic_target=tt, topic_mask=tm, groups=list(groups), polarity=list(polarity), tp_target=pt, tp_mask=pm,
    )


def val(t: torch.Tensor) -> float:
    return float(t.detach())


def outputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "sentiment": torch.randn(batch, 3, generator=g, requires_grad=True),
        "topics": torch.randn(batch, N_TOPICS, generator=g, requires_grad=True),
        "polarity": torch.randn(batch, N_TOPICS, 3, generator=g, requires_grad=True),
        "touchpoints": torch.randn(batch, N_TPS, generator=g, requires_grad=True),
    }


def test_binary_sentiment_ignores_the_neutral_logit():
    items = [item(sentiment="negative", binary=True)]
    out = outputs(1)
    before, _ = multitask_loss(out, items)
    with torch.no_grad():
        out["sentiment"][0, 1] += 5.0  # a data set that has no "neutral" cannot punish it
    after, _ = multitask_loss(out, items)
    assert val(after) == pytest.approx(val(before), abs=1e-6)
    expected = F.cross_entropy(out["sentiment"][:, [0, 2]], torch.tensor([0]))
    assert val(after) == pytest.approx(val(expected), abs=1e-5)
    # a 3-way source does punish the same move
    three = [item(sentiment="negative")]
    out = outputs(1)
    base, _ = multitask_loss(out, three)
    with torch.no_grad():
        out["sentiment"][0, 1] += 5.0
    assert val(multitask_loss(out, three)[0]) > val(base) + 1.0


def test_an_item_without_targets_contributes_nothing():
    labelled = item(sentiment="positive", topics={0: 1.0, 1: 0.0}, polarity=[((0,), POL_INDEX["positive"])], tps={2: 1.0})
    empty = item()
    out2 = outputs(2)
    loss2, parts2 = multitask_loss(out2, [labelled, empty])
    out1 = {k: v[:1].detach().clone().requires_grad_(True) for k, v in out2.items()}
    loss1, parts1 = multitask_loss(out1, [labelled])
    assert val(loss2) == pytest.approx(val(loss1), abs=1e-6)
    assert parts2 == pytest.approx(parts1)
    loss2.backward()
    for key, tensor in out2.items():
        assert not tensor.grad[1].any(), f"the empty item got a {key} gradient"


def test_no_targets_at_all_is_a_zero_loss_that_still_backpropagates():
    out = outputs(2)
    loss, parts = multitask_loss(out, [item(), item()])
    assert parts == {} and val(loss) == 0.0
    loss.backward()  # the training loop may call backward on it


def test_a_group_is_scored_by_its_strongest_leaf():
    group = (1, 2, 3)
    items = [item(groups=[(group, 1.0)])]
    out = outputs(1)
    with torch.no_grad():
        out["topics"][0] = torch.tensor([0.0, -2.0, 1.5, -1.0, 4.0])
    loss, parts = multitask_loss(out, items)
    assert parts["topics"] == pytest.approx(float(F.softplus(torch.tensor(-1.5))), abs=1e-6)  # BCE(1.5, 1)
    loss.backward()
    grad = out["topics"].grad[0]
    assert grad[2] < 0 and grad[[0, 1, 3, 4]].abs().sum() == 0  # only the max leaf moves; leaf 4 is outside
    # lowering a weaker leaf changes nothing; a negative group pushes the max leaf down
    with torch.no_grad():
        out["topics"][0, 1] = -9.0
    assert multitask_loss(out, items)[1]["topics"] == pytest.approx(parts["topics"])
    neg = multitask_loss(out, [item(groups=[(group, 0.0)])])[1]["topics"]
    assert neg == pytest.approx(float(F.softplus(torch.tensor(1.5))), abs=1e-6)


def test_group_polarity_is_learned_on_the_leaf_the_group_picks():
    out = outputs(1)
    with torch.no_grad():
        out["topics"][0] = torch.tensor([0.0, -2.0, 1.5, -1.0, 4.0])
    _, parts = multitask_loss(out, [item(polarity=[((1, 2, 3), POL_INDEX["negative"])])])
    expected = F.cross_entropy(out["polarity"][0, 2][None], torch.tensor([POL_INDEX["negative"]]))
    assert parts["polarity"] == pytest.approx(val(expected), abs=1e-6)


def test_masked_topics_and_touchpoints_are_not_scored():
    items = [item(topics={0: 1.0}, tps={1: 0.0})]
    out = outputs(1)
    loss, parts = multitask_loss(out, items)
    loss.backward()
    assert set(parts) == {"topics", "touchpoints"}
    assert out["topics"].grad[0, 1:].abs().sum() == 0
    assert out["touchpoints"].grad[0, [0, 2]].abs().sum() == 0
    assert out["sentiment"].grad is None or not out["sentiment"].grad.any()


def test_weights_scale_their_part():
    items = [item(sentiment="neutral", topics={0: 1.0})]
    out = outputs(1)
    plain, parts = multitask_loss(out, items)
    weighted, _ = multitask_loss(out, items, {"topics": 3.0})
    assert val(weighted) == pytest.approx(parts["sentiment"] + 3.0 * parts["topics"], rel=1e-5)
    assert val(plain) == pytest.approx(parts["sentiment"] + parts["topics"], rel=1e-5)


def test_noisy_or_group_loss_matches_its_definition_and_shares_the_gradient():
    import torch

    from training.loss import _group_loss

    z = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    p_group = 1 - torch.prod(1 - torch.sigmoid(z.detach()))
    loss = _group_loss(z, 1.0, "noisy_or")
    assert float(loss) == pytest.approx(float(-torch.log(p_group)), rel=1e-5)
    loss.backward()
    assert (z.grad < 0).all()  # every leaf is pushed up, not only the strongest
    z0 = torch.tensor([0.5, -1.0, 2.0])
    assert float(_group_loss(z0, 0.0, "noisy_or")) == pytest.approx(float(-torch.log(1 - p_group)), rel=1e-5)


def test_assumed_negatives_teach_only_nodes_that_kept_their_learned_rows():
    """Node dropout leaves some nodes their text alone (as a new node has); domain negatives
    (assume_absent) must not teach that path, or every zero-shot node learns to score low."""
    it = item(topics={0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0})
    it.topic_assumed = np.array([False, False, True, True, False])
    kept = torch.tensor([True, True, True, False, False])
    out = outputs(1)
    multitask_loss({**out, "topic_kept": kept}, [it])[0].backward()
    grad = out["topics"].grad[0]
    assert grad[[0, 1, 2]].abs().min() > 0  # gold labels and a kept node's assumed negative
    assert grad[3] == 0  # an assumed negative on a dropped node teaches nothing
    # the gold negative on node 1 teaches even where dropped; the old behaviour keeps all
    out = outputs(1)
    dropped = torch.tensor([True, False, False, False, False])
    multitask_loss({**out, "topic_kept": dropped}, [it])[0].backward()
    assert out["topics"].grad[0, 1] != 0 and out["topics"].grad[0, 2] == 0
    out = outputs(1)
    multitask_loss({**out, "topic_kept": dropped}, [it], assumed_on_text_path=True)[0].backward()
    assert out["topics"].grad[0, [1, 2, 3]].abs().min() > 0
