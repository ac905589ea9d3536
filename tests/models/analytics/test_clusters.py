"""Issue clusters: what an analyst sees in the clusters of a data set and of the next batch.

The fast tier gives real Chinese and English complaints planted embeddings (one direction per
issue), so every behaviour of the clusterer is checked in seconds; the real tier embeds the same
complaints and Banking77 queries with the shipped default model (loaded once) and checks that
the clusters hold on the model's own embeddings.
"""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from models.analytics.clusters import ClusterSet, IssueClusterer
from nlp.errors import InvalidInputError, ModelError
from nlp.segment import Segmenter, get_default_segmenter

# Four unrelated issues, ten Chinese and ten English complaints each.
ISSUES: dict[str, tuple[list[str], list[str]]] = {
    "late_delivery": (
        ["外卖送得太慢了，等了一个半小时才到", "配送太慢，饭都凉了", "送餐速度太慢，下次不点了", "骑手迟到了四十分钟",
         "快递太慢了，一个星期才收到", "物流慢得离谱，催了好几次", "等了两个小时外卖还没送到", "送货太慢，说好的半小时变成一小时",
         "配送时间太长了，饿得不行", "发货慢，到货更慢"],
        ["The delivery was so slow, the food arrived cold", "My order took two hours to arrive",
         "Delivery was an hour late again", "The courier was 40 minutes late", "Shipping took a whole week, way too slow",
         "Still waiting for my package, it is very late", "Late delivery every single time",
         "The driver took forever to deliver", "They promised 30 minutes but it took over an hour",
         "Slow delivery, I will not order again"]),
    "refund": (
        ["退款申请了两周还没到账", "退货后一直没有退款", "说好的退款到现在都没收到", "申请退款被拒绝了，很不合理",
         "退款流程太麻烦了，钱还没退回来", "商家拖着不给退款", "取消订单后钱一直没退", "退款到账太慢了，等了一个月",
         "要求退款客服不理", "钱退不回来，太坑了"],
        ["I requested a refund two weeks ago and still have not received it", "My refund has not arrived yet",
         "They refused to refund my money", "Returned the item but never got my money back",
         "Still waiting on my refund after a month", "The refund process is a nightmare",
         "Cancelled the order and the money was never refunded", "Where is my refund?",
         "They keep delaying my refund", "I want my money back, refund still pending"]),
    "app_crash": (
        ["APP老是闪退，根本没法用", "手机应用一打开就崩溃", "软件更新后频繁闪退", "app卡死了，付款页面打不开",
         "应用总是崩溃，登录不了", "新版本一直闪退", "打开app就白屏然后退出", "客户端经常崩溃，体验很差",
         "APP闪退导致订单没提交", "应用程序打不开，一直报错"],
        ["The app keeps crashing when I open it", "App crashes every time I try to pay",
         "After the update the app crashes constantly", "The application freezes and closes itself",
         "I cannot log in, the app crashes", "The new version of the app keeps crashing",
         "App shows a white screen and then quits", "The mobile app is unusable, it crashes all the time",
         "The app crashed and my order was not submitted", "The app will not open, it shows an error and closes"]),
    "rude_service": (
        ["客服态度太差了，说话很不耐烦", "客服态度恶劣，直接挂电话", "服务员态度很差，爱答不理", "客服骂人，太不礼貌了",
         "打电话给客服，态度非常冷漠", "售后客服态度差，推卸责任", "客服人员很没礼貌", "服务态度极差，再也不来了",
         "客服说话很冲，体验很糟糕", "前台态度傲慢，让人生气"],
        ["The customer service agent was very rude", "Rude staff, they hung up on me",
         "The support person was impatient and rude", "The agent was condescending and unhelpful",
         "Customer service was extremely rude to me", "The staff were rude and ignored us",
         "Terrible attitude from the customer service team", "The representative yelled at me",
         "The service staff were so impolite", "Rude and arrogant customer support"]),
}
HAN = re.compile("[\u4e00-\u9fff]")


def corpus(issues=ISSUES, per_lang: slice = slice(None)) -> tuple[list[str], list[str], list[str], list[str]]:
    """(texts, ids, langs, issue of each) for the chosen issues."""
    texts, ids, langs, issue_of = [], [], [], []
    for issue in issues:
        zh, en = ISSUES[issue]
        for lang, rows in (("zh", zh), ("en", en)):
            for i, text in list(enumerate(rows))[per_lang]:
                texts.append(text)
                ids.append(f"{issue}-{lang}{i}")
                langs.append(lang)
                issue_of.append(issue)
    return texts, ids, langs, issue_of


def planted(issue_of: list[str], *, seed: int = 0, dim: int = 64, spread: float = 0.35) -> np.ndarray:
    """Unit embeddings around one fixed random direction per issue (same issue -> same direction)."""
    names = sorted(ISSUES) + ["noise"]
    centers = np.random.default_rng(1234).normal(size=(len(names), dim))
    rng = np.random.default_rng(seed)
    rows = []
    for issue in issue_of:
        if issue == "noise":
            rows.append(rng.normal(size=dim))
        else:
            c = centers[names.index(issue)]
            rows.append(c / np.linalg.norm(c) + spread * rng.normal(size=dim) / np.sqrt(dim))
    emb = np.asarray(rows, dtype=np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def majority(labels, issue_of, issue) -> tuple[str | None, float]:
    counts = collections.Counter(lab for lab, i in zip(labels, issue_of, strict=True) if i == issue)
    lab, n = counts.most_common(1)[0]
    return lab, n / sum(counts.values())


@pytest.fixture(scope="module")
def fitted():
    texts, ids, langs, issue_of = corpus()
    emb = planted(issue_of)
    clusterer = IssueClusterer()
    return clusterer, clusterer.fit(texts, emb, ids=ids, langs=langs), (texts, ids, langs, issue_of, emb)


# --- fast tier: planted embeddings --------------------------------------------------------------


def test_each_issue_is_one_cluster_and_unrelated_issues_are_not_merged(fitted):
    _, result, (_, _, _, issue_of, _) = fitted
    winners = {}
    for issue in ISSUES:
        winners[issue], share = majority(result.labels, issue_of, issue)
        assert winners[issue] is not None and share >= 0.9, (issue, share)
    assert len(set(winners.values())) == len(ISSUES), winners
    assert sorted(c.id for c in result.clusters) == ["c1", "c2", "c3", "c4"]
    assert sum(c.size for c in result.clusters) == sum(lab is not None for lab in result.labels)


def test_labels_and_keywords_are_chinese_words_and_english_words(fitted):
    _, result, (texts, _, _, issue_of, _) = fitted
    seg = get_default_segmenter()
    for cluster in result.clusters:
        members = [t for t, lab in zip(texts, result.labels, strict=True) if lab == cluster.id]
        words = {w for t in members for w in seg.tokenize(t)}
        assert cluster.keywords_zh and cluster.keywords_en, cluster
        for kw in cluster.keywords_zh:  # one jieba word, or two written together; never a sentence
            assert HAN.search(kw) and 2 <= len(kw) <= 8 and kw not in members, kw
            assert kw in words or any(kw == a + b for a in words for b in words if kw.startswith(a)), kw
        assert all(not HAN.search(kw) for kw in cluster.keywords_en)
        assert cluster.label == f"{cluster.label_zh} / {cluster.label_en}"
        assert set(cluster.keywords) == set(cluster.keywords_zh) | set(cluster.keywords_en)
    late = result.get(majority(result.labels, issue_of, "late_delivery")[0])
    assert any("慢" in k for k in late.keywords_zh) and {"delivery", "late", "slow"} & set(late.keywords_en)
    refund = result.get(majority(result.labels, issue_of, "refund")[0])
    assert "退款" in refund.keywords_zh and "refund" in refund.keywords_en


def test_examples_are_members_most_central_first(fitted):
    from models.analytics._cluster_fit import align

    clusterer, result, (_, ids, langs, _, emb) = fitted
    aligned = align(emb, langs, clusterer.shifts_)  # the space the centroids live in
    by_id = dict(zip(ids, result.labels, strict=True))
    for cluster in result.clusters:
        assert 1 <= len(cluster.examples) <= 5 and all(by_id[e] == cluster.id for e in cluster.examples)
        row = clusterer.cluster_ids_.index(cluster.id)
        sims = [float(aligned[ids.index(e)] @ clusterer.centroids_[row]) for e in cluster.examples]
        members = [float(aligned[k] @ clusterer.centroids_[row]) for k, lab in enumerate(result.labels)
                   if lab == cluster.id]
        assert sims == sorted(sims, reverse=True) and sims[0] == pytest.approx(max(members))


def test_rerunning_on_the_same_data_gives_the_same_clusters(fitted):
    _, first, (texts, ids, langs, _, emb) = fitted
    again = IssueClusterer().fit(texts, emb, ids=ids, langs=langs)
    assert again.labels == first.labels
    assert [c.to_dict() for c in again.clusters] == [c.to_dict() for c in first.clusters]


def test_at_least_85_percent_belong_to_a_cluster_despite_stray_verbatims():
    texts, ids, langs, issue_of = corpus()
    strays = ["今天天气不错", "The parking lot was full", "包装盒上的图案挺好看", "I bought it for my mother",
              "发票开错了抬头", "Can I change the colour?", "门店的音乐太吵", "The lift was out of order",
              "积分怎么兑换", "My cat likes the box", "想问一下营业时间", "The font on the receipt is tiny",
              "赠品没有给", "Why is the logo blue?"]
    texts, ids = texts + strays, ids + [f"stray{i}" for i in range(len(strays))]
    langs = langs + ["zh" if HAN.search(s) else "en" for s in strays]
    issue_of = issue_of + ["noise"] * len(strays)
    result = IssueClusterer().fit(texts, planted(issue_of, seed=3), ids=ids, langs=langs)
    assert result.coverage >= 0.85
    for issue in ISSUES:  # strays may join clusters, but issues are not merged
        assert majority(result.labels, issue_of, issue)[1] >= 0.9
    assert len({majority(result.labels, issue_of, i)[0] for i in ISSUES}) == len(ISSUES)
    for cluster in result.clusters:  # and each cluster is still mostly one issue
        members = [i for i, lab in zip(issue_of, result.labels, strict=True) if lab == cluster.id]
        assert collections.Counter(members).most_common(1)[0][1] >= 0.7 * len(members)


def test_clusters_map_to_the_topic_they_overlap_most_or_are_emerging(fitted):
    from models.taxonomy import default_taxonomy

    _, _, (texts, ids, langs, issue_of, emb) = fitted
    topics = []
    for k, issue in enumerate(issue_of):
        if issue == "late_delivery":
            topics.append(["delivery.timeliness"] if k % 5 else ["delivery.courier"])
        elif issue == "refund":
            topics.append(["aftersales.returns", "billing.charges"] if k % 2 else ["aftersales.returns"])
        elif issue == "rude_service":
            topics.append(["service.attitude", "not.a.taxonomy.topic"])
        else:  # app crashes: the taxonomy has nothing the classifier could give
            topics.append(["not.a.taxonomy.topic"] if k % 3 == 0 else [])
    result = IssueClusterer().fit(texts, emb, ids=ids, langs=langs, topics=topics, taxonomy=default_taxonomy())
    found = {issue: result.get(majority(result.labels, issue_of, issue)[0]) for issue in ISSUES}
    assert (found["late_delivery"].topic, found["late_delivery"].emerging) == ("delivery.timeliness", False)
    assert found["late_delivery"].overlap == pytest.approx(0.8, abs=0.06)
    assert found["refund"].topic == "aftersales.returns" and found["refund"].overlap >= 0.9
    assert found["rude_service"].topic == "service.attitude"
    crash = found["app_crash"]
    assert crash.emerging and crash.topic is None and crash.overlap == 0.0


def test_a_new_batch_joins_existing_clusters_before_new_ones_are_made():
    old = ["late_delivery", "refund", "rude_service"]
    texts, ids, langs, issue_of = corpus(old, slice(0, 7))
    clusterer = IssueClusterer()
    first = clusterer.fit(texts, planted(issue_of), ids=ids, langs=langs)
    known = {issue: majority(first.labels, issue_of, issue)[0] for issue in old}

    more = corpus(old, slice(7, None))
    crash = corpus(["app_crash"])
    b_texts, b_ids, b_langs, b_issue = (a + b for a, b in zip(more, crash, strict=True))
    batch = clusterer.assign(b_texts, planted(b_issue, seed=7), ids=b_ids, langs=b_langs)
    for issue in old:  # held-back complaints of known issues keep their cluster's id and name
        assert majority(batch.labels, b_issue, issue) == (known[issue], 1.0)
        assert batch.get(known[issue]).label == first.get(known[issue]).label
    new_id, share = majority(batch.labels, b_issue, "app_crash")
    assert share >= 0.9 and new_id == "c4" and new_id not in known.values()
    assert "崩溃" in "".join(batch.get(new_id).keywords_zh) or "闪退" in "".join(batch.get(new_id).keywords_zh)
    assert {c.id for c in batch.clusters} == {lab for lab in batch.labels if lab is not None}
    assert batch.get(known["refund"]).size == 6

    # the new cluster is remembered: a later batch of crashes matches it
    later = clusterer.assign(crash[0][:5], planted(["app_crash"] * 5, seed=11), ids=crash[1][:5], langs=crash[2][:5])
    assert later.labels == [new_id] * 5


def test_save_and_load_keep_the_segmenter_and_give_the_same_assignments(tmp_path):
    user_dict = tmp_path / "brand.txt"
    user_dict.write_text("骑手迟到 100 n\n", encoding="utf-8")
    seg = Segmenter(user_dict=user_dict)
    assert "骑手迟到" in seg.tokenize("骑手迟到了四十分钟")
    texts, ids, langs, issue_of = corpus(["late_delivery", "refund", "rude_service"])
    clusterer = IssueClusterer(seg, random_state=7)
    clusterer.fit(texts, planted(issue_of), ids=ids, langs=langs)
    clusterer.save(tmp_path / "clusters")
    user_dict.unlink()  # the saved directory must not depend on the original file

    loaded = IssueClusterer.load(tmp_path / "clusters")
    assert "骑手迟到" in loaded.segmenter.tokenize("骑手迟到了四十分钟")
    assert loaded.random_state == 7 and loaded.clusters_ == clusterer.clusters_
    b_texts, b_ids, b_langs, b_issue = corpus(["late_delivery", "refund", "app_crash"])
    b_emb = planted(b_issue, seed=5)
    after = loaded.assign(b_texts, b_emb, ids=b_ids, langs=b_langs)
    before = clusterer.assign(b_texts, b_emb, ids=b_ids, langs=b_langs)
    assert after.labels == before.labels and after.clusters == before.clusters
    assert not list((tmp_path / "clusters").glob("*.pkl"))


def test_failed_items_are_outliers_and_bad_arguments_say_what_is_wrong():
    texts, ids, langs, issue_of = corpus()
    emb = planted(issue_of)
    emb[0] = np.nan  # the classifier could not embed this one
    result = IssueClusterer().fit(texts, emb, ids=ids, langs=langs)
    assert result.labels[0] is None and sum(lab is not None for lab in result.labels[1:]) >= 0.85 * len(ids)
    with pytest.raises(InvalidInputError, match="one entry per text"):
        IssueClusterer().fit(texts, emb, ids=ids[:-1], langs=langs)
    with pytest.raises(InvalidInputError, match="rows"):
        IssueClusterer().fit(texts, emb[:-1], ids=ids, langs=langs)
    with pytest.raises(ModelError, match="not fitted"):
        IssueClusterer().assign(texts, emb, ids=ids, langs=langs)


def test_too_few_verbatims_give_no_clusters_rather_than_noise():
    texts, ids, langs, issue_of = corpus(["refund"], slice(0, 3))
    result = IssueClusterer().fit(texts, planted(issue_of), ids=ids, langs=langs)
    assert result == ClusterSet(labels=[None] * 6, clusters=[])
    assert result.to_dict()["coverage"] == 0.0


# --- real tier: the default model's own embeddings ---------------------------------------------

BANKING_INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_phone", "top_up_failed")


@pytest.fixture(scope="module")
def real(base_encoder_dir, shared_data):
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from training.data.registry import load_dataset

    classifier = Classifier.load(default_model_dir(), base_dir=base_encoder_dir)
    texts, ids, langs, issue_of = corpus()
    picked = collections.defaultdict(list)
    for ex in load_dataset("banking77", "test", data_dir=shared_data):
        intent = ex.raw_labels["intent"]
        if intent in BANKING_INTENTS and len(picked[intent]) < 25:
            picked[intent].append(ex)
    bank = [ex for intent in BANKING_INTENTS for ex in picked[intent]]
    items = [{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)]
    items += [{"id": ex.id, "text": ex.text} for ex in bank]
    results, emb = classifier.classify_with_embeddings(items)
    return {
        "texts": [it["text"] for it in items], "ids": [it["id"] for it in items],
        "langs": [r["lang"] for r in results], "topics": [[t["id"] for t in r["topics"]] for r in results],
        "issue_of": issue_of + [ex.raw_labels["intent"] for ex in bank], "emb": emb,
        "taxonomy": classifier.model.taxonomy,
    }


def fit_real(real) -> ClusterSet:
    """A fresh clusterer's clusters of the real tier's texts, mapped to the model's taxonomy."""
    return IssueClusterer().fit(real["texts"], real["emb"], ids=real["ids"], langs=real["langs"],
                                topics=real["topics"], taxonomy=real["taxonomy"])


@pytest.fixture(scope="module")
def real_clusters(real):
    return fit_real(real)


@pytest.mark.slow
@pytest.mark.data
def test_real_chinese_and_english_complaints_about_one_issue_share_a_cluster(real, real_clusters):
    labels, issue_of = real_clusters.labels, real["issue_of"]
    assert real_clusters.coverage >= 0.85
    for issue in ISSUES:
        winner, share = majority(labels, issue_of, issue)
        assert winner is not None and share >= 0.75, (issue, share)
        in_winner = {lang for lab, i, lang in zip(labels, issue_of, real["langs"], strict=True)
                     if i == issue and lab == winner}
        assert in_winner == {"zh", "en"}, issue
        cluster = real_clusters.get(winner)
        assert cluster.keywords_zh and cluster.keywords_en and " / " in cluster.label


@pytest.mark.slow
@pytest.mark.data
def test_real_unrelated_issues_and_banking_intents_are_not_merged(real, real_clusters):
    from sklearn.metrics import normalized_mutual_info_score

    labels, issue_of = real_clusters.labels, real["issue_of"]
    groups = list(ISSUES) + list(BANKING_INTENTS)
    winners = [majority(labels, issue_of, g)[0] for g in groups]
    assert len(set(winners)) == len(groups), dict(zip(groups, winners, strict=True))
    assert normalized_mutual_info_score(issue_of, [lab or "-" for lab in labels]) >= 0.75


@pytest.mark.slow
@pytest.mark.data
def test_real_rerun_and_new_batch_keep_the_ids(real, real_clusters):
    again = fit_real(real)
    assert again.labels == real_clusters.labels and again.clusters == real_clusters.clusters

    # fit without the rude-service complaints and every fourth text, then bring them in as a new batch
    held = [k for k, i in enumerate(real["issue_of"]) if i == "rude_service" or k % 4 == 0]
    kept = [k for k in range(len(real["ids"])) if k not in set(held)]

    def pick(rows):
        return ([real["texts"][k] for k in rows], real["emb"][rows], [real["ids"][k] for k in rows],
                [real["langs"][k] for k in rows], [real["issue_of"][k] for k in rows])

    texts, emb, ids, langs, issue_of = pick(kept)
    clusterer = IssueClusterer()
    first = clusterer.fit(texts, emb, ids=ids, langs=langs)
    b_texts, b_emb, b_ids, b_langs, b_issue = pick(held)
    batch = clusterer.assign(b_texts, b_emb, ids=b_ids, langs=b_langs)
    # each known issue's new texts land in an existing cluster that holds mostly that issue (an issue
    # may split into two such clusters, e.g. lost vs stolen phone)
    issue_of_cluster = {lab: collections.Counter(i for lb, i in zip(first.labels, issue_of, strict=True) if lb == lab)
                        .most_common(1)[0][0] for lab in set(first.labels) - {None}}
    for group in set(b_issue) - {"rude_service"}:
        landed = majority(batch.labels, b_issue, group)[0]
        assert landed in issue_of_cluster and issue_of_cluster[landed] == group, (group, landed)
    rude, share = majority(batch.labels, b_issue, "rude_service")
    assert share >= 0.75 and rude not in set(first.labels), rude
