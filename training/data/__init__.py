"""Public data sets as one example type with partial labels.

>>> from training.data import load_dataset, DATASETS
>>> test = load_dataset("waimai_10k", "test")          # list[Example]
>>> DATASETS["twitter_us_airline"].topic_space          # ids its labels can express

Every loader applies the label mapping table of ``spec/taxonomy.md`` (see :mod:`.mapping`); a
label that does not map is absent, not negative. Data comes from ``$VERBATIM_DATA`` (default:
``../shared/data`` beside the repository root) and is never copied or downloaded.
"""

from __future__ import annotations

from .bench import MIXED2000_PATH, load_mixed2000, write_records_jsonl
from .files import ENV_VAR, data_dir
from .registry import DATASETS, dataset_info, load_dataset
from .schema import (
    AspectTerm,
    DatasetInfo,
    Example,
    Sentiment,
    SentimentSource,
    TopicLabel,
)

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "MIXED2000_PATH",
    "AspectTerm",
    "DatasetInfo",
    "Example",
    "Sentiment",
    "SentimentSource",
    "TopicLabel",
    "data_dir",
    "dataset_info",
    "load_dataset",
    "load_mixed2000",
    "write_records_jsonl",
]
