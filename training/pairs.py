"""Two training texts joined into one, with the targets both of them support.

Most labelled texts are about one thing, so the topic heads learn that a node's attention finds
one complaint. Feedback often holds two ("快递太慢了，等了一个星期才到，客服也不回复。"), and a node
that attends over the whole text then sees its evidence diluted by the other complaint: measured
on 0.3.0 and every stage after it, that sentence's delivery topic sits near the threshold and its
customer-service topic below it, while each half alone is found. Joining two train texts teaches
the heads that case with real labels.

What the joined text is known to be about is what *both* halves allow:

- a topic (or touchpoint) is present if either half has it; absent only if both halves are known
  not to have it; unknown otherwise (a half from a data set whose scheme cannot say);
- a level-1 group is present if either half has it; absent only if the other half is known to
  have none of its leaves;
- a topic's polarity is kept unless the other half has the same leaves (present, or with a
  polarity of their own): the joined text's polarity there could be mixed;
- document sentiment is kept only when both halves agree (two negative reviews make a negative
  one); otherwise unknown.

Dev and evaluation never see joined texts: they are made per training batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from training.config import PAIR_PARTNERS as PARTNERS
from training.targets import TrainItem

_CJK = re.compile(r"[\u3400-\u9fff]")
#: joined texts stay under the encoder's length (128 tokens) with room to spare, so the second
#: half's labels are never truncated away; about 1 token per Chinese character, 4 per English one
MAX_CHARS = {"zh": 100, "en": 360}
_JOINERS = {"zh": ("，", "。", "；"), "en": (". ", ", and ", "; ")}
_END = "。！？!?.,，;；、 "


def _says_something(item: TrainItem) -> bool:
    """The item has a positive topic or touchpoint: joining it can teach a second complaint."""
    return bool((item.topic_target[item.topic_mask] > 0).any() or (item.tp_target[item.tp_mask] > 0).any()
                or any(t > 0 for _, t in item.groups))


def _either(a_t: np.ndarray, a_m: np.ndarray, b_t: np.ndarray, b_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = (a_m & (a_t > 0)) | (b_m & (b_t > 0))
    neg = a_m & (a_t <= 0) & b_m & (b_t <= 0)
    return pos.astype(np.float32), pos | neg


def join_text(a: str, b: str, joiner: str) -> str:
    """``a`` and ``b`` as one text: ``a`` without its closing punctuation, ``joiner``, ``b``."""
    return a.rstrip().rstrip(_END) + joiner + b.strip()


def script(text: str) -> str:
    """``zh`` for a text with Chinese characters, else ``en``: which joiners and length limit apply."""
    return "zh" if _CJK.search(text) else "en"


def join(a: TrainItem, b: TrainItem, joiner: str) -> TrainItem:
    """``a`` and ``b`` as one text ``a + joiner + b`` with the targets both support (module doc)."""
    topic_target, topic_mask = _either(a.topic_target, a.topic_mask, b.topic_target, b.topic_mask)
    tp_target, tp_mask = _either(a.tp_target, a.tp_mask, b.tp_target, b.tp_mask)
    assumed = (a.assumed() | b.assumed()) & topic_mask & (topic_target == 0)

    def none_of(leaves: tuple[int, ...], other: TrainItem) -> bool:
        idx = list(leaves)
        return bool(other.topic_mask[idx].all() and (other.topic_target[idx] <= 0).all()
                    and not any(t > 0 and set(g) & set(leaves) for g, t in other.groups))

    groups = [(g, t) for g, t in a.groups if t > 0 or none_of(g, b)]
    groups += [(g, t) for g, t in b.groups if t > 0 or none_of(g, a)]

    def labelled(item: TrainItem) -> set[int]:  # leaves with a polarity label or present
        present = np.flatnonzero(item.topic_mask & (item.topic_target > 0)).tolist()
        return {leaf for g, _ in item.polarity for leaf in g} | set(present)

    a_leaves, b_leaves = labelled(a), labelled(b)
    polarity = [(g, p) for g, p in a.polarity if not set(g) & b_leaves]
    polarity += [(g, p) for g, p in b.polarity if not set(g) & a_leaves]

    same = a.sentiment >= 0 and a.sentiment == b.sentiment
    return TrainItem(
        text=join_text(a.text, b.text, joiner),
        source=f"{a.source}+{b.source}",
        sentiment=a.sentiment if same else -1,
        sentiment_binary=same and (a.sentiment_binary or b.sentiment_binary),
        topic_target=topic_target,
        topic_mask=topic_mask,
        groups=groups,
        polarity=polarity,
        tp_target=tp_target,
        tp_mask=tp_mask,
        topic_assumed=assumed,
    )


def pair_up(items: Sequence[TrainItem], rate: float, rng: np.random.Generator,
            pools: Mapping[str, Sequence[TrainItem]], *, partners: str = "dataset",
            tries: int = 8) -> list[TrainItem]:
    """``items`` with about ``rate`` of those that say something (a positive topic or touchpoint)
    replaced by themselves joined to a partner in the same language, short enough together.
    The batch keeps its size.

    ``partners="dataset"``: another train item of the *same data set* (``pools``, by source),
    drawn up to ``tries`` times; an item without a fitting one stays alone. Both halves are
    labelled under one scheme, so the joined text keeps the negatives they share.
    ``partners="batch"``: another item of the batch that says something (any data set); halves
    from different schemes keep mostly positives. Which trains better is measured, not assumed:
    session 9's two stages (v0.4-pairs.yaml, v0.4-pairs-b.yaml) raised outside-scheme topics on
    tweets alike, and the batch one kept topic precision and the tenant probe."""
    if partners not in PARTNERS:
        raise ValueError(f"partners is one of {', '.join(PARTNERS)}; got {partners!r}")
    out = list(items)
    if rate <= 0:
        return out
    scripts = [script(it.text) for it in items]
    for i, item in enumerate(items):
        if rng.random() >= rate or not _says_something(item):
            continue
        lang = scripts[i]
        joiners = _JOINERS[lang]
        if partners == "batch":
            fits = [j for j in range(len(items)) if j != i and scripts[j] == lang and _says_something(items[j])
                    and len(item.text) + len(items[j].text) <= MAX_CHARS[lang]]
            if fits:
                other = items[fits[int(rng.integers(len(fits)))]]
                out[i] = join(item, other, joiners[int(rng.integers(len(joiners)))])
            continue
        pool = pools.get(item.source) or ()
        for _ in range(tries if pool else 0):
            other = pool[int(rng.integers(len(pool)))]
            if (other is not item and _says_something(other) and script(other.text) == lang
                    and len(item.text) + len(other.text) <= MAX_CHARS[lang]):
                out[i] = join(item, other, joiners[int(rng.integers(len(joiners)))])
                break
    return out
