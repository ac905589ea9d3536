"""Training settings: a frozen dataclass read from YAML and saved beside the model it made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from nlp.errors import InvalidInputError

#: where a joined training text's second half comes from (training.pairs.pair_up)
PAIR_PARTNERS = ("dataset", "batch")
#: how a model keeps its heads from reading the text prefix (models.classifier.config.ClassifierConfig)
PREFIX_MASKS = ("tokens", "offsets")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a model is trained. ``mixture`` maps a data set (or ``taxonomy-seeds``) to its share of batches."""

    name: str = "verbatim-cem"
    version: str = "0.1.0"
    seed: int = 13
    # the order training texts are drawn in (default: seed, which also draws the dev split): a later
    # stage keeps its parent's dev texts (same seed) and still sees other batches (another sampler_seed)
    sampler_seed: int | None = None
    steps: int = 4000
    batch_size: int = 16
    lr: float = 3e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_length: int = 128
    node_dropout: float = 0.3
    eval_every: int = 500
    checkpoint_every: int = 100
    dev_per_dataset: int = 600
    max_train_per_dataset: int | None = None
    taxonomy: str | None = None  # path to a taxonomy YAML; default: the shipped default taxonomy
    # keep only these layers of the base encoder (e.g. every other one: a faster student); () = all
    encoder_layers: tuple[int, ...] = ()
    lora_r: int = 16
    lora_alpha: int = 32
    mixture: dict[str, float] = field(default_factory=dict)
    # data sets whose topic space is taken as exhaustive for labelled examples (see TargetBuilder)
    assume_closed: tuple[str, ...] = ()
    # training-only negatives from domain knowledge: {data set: {topic: [gates]}}; a labelled train
    # text of that set is taken as not about the topic (a leaf or level-1 id) unless one of its
    # labels falls under a gate (e.g. restaurant sentences are not about couriers; not about
    # cleanliness unless they carry an ambience label). Dev and evaluation never use it.
    assume_absent: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # False: those negatives skip a node in a step where node dropout left it its text alone, so
    # they never teach the zero-shot path new nodes depend on; True: always (the v0.3-topics candidate)
    assume_absent_text_path: bool = False
    # training-only weak positives: {topic: {lang: regex}}; a train text (any data set but the
    # seeds) whose language's pattern matches is taken as about the topic, unless its data set's
    # own scheme says the topic is absent. For topics no data set labels (e.g. cleanliness of a
    # place, which SemEval files under ambience). Dev and evaluation never use it.
    weak_topics: dict[str, dict[str, str]] = field(default_factory=dict)
    # how a level-1 label (e.g. "service") scores its leaves: "max" (v0.1.0) or "noisy_or"
    group_loss: str = "max"
    # "bce": topics are multi-label; "softmax": exactly one topic per text (intent benchmarks)
    topic_loss: str = "bce"
    loss_weights: dict[str, float] = field(default_factory=dict)
    # the share of a batch's texts (those with a topic or touchpoint) joined to another train text
    # of the same data set and language, with the targets both support (training.pairs): teaches
    # two complaints in one text
    pair_rate: float = 0.0
    # where a joined text's second half comes from: "dataset" (the same data set) or "batch" (any
    # text of the batch); training.pairs.pair_up says what each keeps
    pair_partners: str = "dataset"
    # how the heads are kept from reading the text prefix (ClassifierConfig.prefix_mask): "offsets"
    # (exactly the prefix's tokens) or "tokens" (as many leading tokens as the prefix has alone,
    # which also hides an English text's first word piece); None: the init_from model's, else "tokens"
    prefix_mask: str | None = None
    # a model directory to start from (its adapters, heads and node rows; taxonomy nodes it lacks
    # start from their text), instead of the bare base encoder: a second stage on top of a model
    init_from: str | None = None
    # train under torch.autocast(bfloat16) on the CPU as well (always on CUDA): faster steps on a
    # CPU with native bf16 (AVX512-BF16 / AMX), slower elsewhere
    cpu_bf16: bool = False
    # a model directory to distil from: every batch also learns the teacher's outputs on its texts
    # (training.loss.distill_loss, weighted by distill_weight), which gives every text a target
    # for every head; the teacher must have the same taxonomy nodes
    teacher: str | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 2.0

    @classmethod
    def from_yaml(cls, path: Path | str) -> TrainConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInputError(f"Cannot read the training config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInputError(f"The training config {path} must be a YAML mapping of settings.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"Unknown setting(s) in {path}: {', '.join(unknown)}. Known settings: {', '.join(sorted(known))}."
            )
        try:
            for key in ("assume_closed", "encoder_layers"):
                if key in data:
                    data[key] = tuple(data[key] or ())
            if "weak_topics" in data:
                data["weak_topics"] = _weak_topics(data["weak_topics"], path)
            if "assume_absent" in data:
                data["assume_absent"] = _absent_rules(data["assume_absent"], path)
            config = cls(**data)
        except TypeError as exc:
            raise InvalidInputError(f"Invalid training config {path}: {exc}") from exc
        if not config.mixture:
            raise InvalidInputError(f"{path} names no data: add a `mixture:` mapping of data set -> share.")
        stray = sorted(set(config.assume_absent) - set(config.mixture))
        if stray:
            raise InvalidInputError(f"{path}: assume_absent names data sets the mixture does not train on: {', '.join(stray)}.")
        if config.group_loss not in ("max", "noisy_or"):
            raise InvalidInputError(f"{path}: group_loss must be 'max' or 'noisy_or', got {config.group_loss!r}.")
        if config.topic_loss not in ("bce", "softmax"):
            raise InvalidInputError(f"{path}: topic_loss must be 'bce' or 'softmax', got {config.topic_loss!r}.")
        for key in ("init_from", "teacher"):
            named = getattr(config, key)
            if named is not None and not (Path(named) / "config.json").is_file():
                raise InvalidInputError(f"{path}: {key} names {named}, which is not a model directory (no config.json).")
        layers = config.encoder_layers
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers) or len(set(layers)) != len(layers):
            raise InvalidInputError(
                f"{path}: encoder_layers must list distinct layer numbers of the base (0 is the first), got {list(layers)}."
            )
        if config.distill_weight < 0 or config.distill_temperature <= 0:
            raise InvalidInputError(f"{path}: distill_weight must be >= 0 and distill_temperature > 0.")
        if not 0 <= config.pair_rate <= 1:
            raise InvalidInputError(f"{path}: pair_rate is a share of each batch, between 0 and 1; got {config.pair_rate}.")
        if config.pair_partners not in PAIR_PARTNERS:
            raise InvalidInputError(
                f"{path}: pair_partners is one of {', '.join(PAIR_PARTNERS)}; got {config.pair_partners!r}."
            )
        if config.prefix_mask not in (None, *PREFIX_MASKS):
            raise InvalidInputError(
                f"{path}: prefix_mask is one of {', '.join(PREFIX_MASKS)} (or absent); got {config.prefix_mask!r}."
            )
        if config.steps <= 0 or config.batch_size <= 0:
            raise InvalidInputError(f"{path}: steps and batch_size must be positive.")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _absent_rules(raw: Any, path: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """``assume_absent`` as {data set: {topic: (gate, ...)}}, or an error saying what is wrong."""
    shape = "assume_absent must map a data set to a mapping of topic id -> list of gate ids ([] for none)"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: {shape}; got {type(raw).__name__}.")
    rules: dict[str, dict[str, tuple[str, ...]]] = {}
    for dataset, topics in raw.items():
        if not isinstance(topics, dict):
            raise InvalidInputError(f"{path}: assume_absent.{dataset}: {shape}.")
        rules[str(dataset)] = {}
        for topic, gates in topics.items():
            gates = gates or []
            if not isinstance(gates, list) or not all(isinstance(g, str) and g for g in gates):
                raise InvalidInputError(f"{path}: assume_absent.{dataset}.{topic}: {shape}; got {gates!r}.")
            rules[str(dataset)][str(topic)] = tuple(gates)
    return rules


def _weak_topics(raw: Any, path: Path) -> dict[str, dict[str, str]]:
    """``weak_topics`` as {topic: {lang: pattern}}, each pattern compiled once to check it."""
    import re

    shape = "weak_topics must map a topic id to a mapping of language (zh, en) -> regular expression"
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise InvalidInputError(f"{path}: {shape}.")
    out: dict[str, dict[str, str]] = {}
    for topic, patterns in raw.items():
        out[str(topic)] = {}
        for lang, pattern in patterns.items():
            if lang not in ("zh", "en") or not isinstance(pattern, str) or not pattern:
                raise InvalidInputError(f"{path}: weak_topics.{topic}: {shape}; got {lang!r}: {pattern!r}.")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInputError(f"{path}: weak_topics.{topic}.{lang} is not a valid regular expression: {exc}.") from None
            out[str(topic)][lang] = pattern
    return out
