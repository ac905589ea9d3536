"""A tiny random XLM-R encoder directory for the tiny-model test tier (builds in ~1 s).

Same architecture and tokenizer family as the real base (XLMRobertaModel, a SentencePiece-style
Unigram tokenizer with ``<s> … </s>`` specials and character offsets), but 2 layers of width 32
and a vocabulary learned from the default taxonomy's node texts plus the given texts, so the
classifier, trainer and predictor run end to end in seconds. Its numbers mean nothing; tests on
it check mechanics (shapes, masks, offsets, checkpoints), never quality.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

HIDDEN = 32


def build_tiny_base(out_dir: Path, texts: Iterable[str] = (), *, seed: int = 0, vocab_size: int = 1500) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files to ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    from models.classifier.model import _node_pieces
    from models.taxonomy import default_taxonomy

    tax = default_taxonomy()
    corpus = [p for node in (*tax.topics, *tax.touchpoints) for p in _node_pieces(node)]
    corpus += ["query: ", *texts]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    # The same texts must give the same ids (so the same model and the same training run) every
    # time, but the trainer's output varies: scores differ in the last digits (parallel float
    # sums), and the characters it adds to cover the alphabet come in hash order with scores
    # stepped by that order. So: rounded scores, one shared lowest score for every single
    # character, and pieces sorted by score, then text.
    learned = [(piece, round(score, 6)) for piece, score in json.loads(tok.to_str())["model"]["vocab"][4:]]
    floor = min(score for _, score in learned)
    learned = [(piece, floor if len(piece) == 1 else score) for piece, score in learned]
    vocab = [(s, 0.0) for s in ("<s>", "<pad>", "</s>", "<unk>")]
    vocab += sorted(learned, key=lambda v: (-v[1], v[0])) + [("<mask>", 0.0)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    XLMRobertaTokenizer(vocab=vocab).save_pretrained(str(out_dir))
    config = XLMRobertaConfig(
        vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(str(out_dir))
    return out_dir
