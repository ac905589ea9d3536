"""Faster inference for the encoder's linear layers: bf16 and batch-invariant int8.

**bf16** (:class:`BF16Linear`): weights stored in bfloat16, activations rounded to bfloat16 on the
way in, products accumulated in fp32 by oneDNN. The query/key/value projections and the
feed-forward block's first layer hand bf16 on (attention and GELU then run in bf16 and feed the
next linear layer without a cast: the casts cost as much as a fifth of the time); every layer that
feeds a residual sum and layer norm hands on fp32, so layer norms and the heads stay fp32. On CPUs with native bf16 dot products (AVX512-BF16 or AMX) this is about twice
as fast as fp32 and agrees with it far better than int8 (``evaluation/bench_classify.py``
measures both); elsewhere oneDNN emulates bf16 and it would be slower, so ``auto`` picks it only
where the CPU has it (:func:`resolve_precision`).

**int8** (:class:`Int8Linear`):

Every ``nn.Linear`` of the encoder becomes an :class:`Int8Linear`: weights quantised once to int8
per output channel (symmetric), activations quantised at run time to int8 per *row* (per token),
symmetric, the product computed in exact int32 by ``torch._int_mm`` (oneDNN, VNNI where the CPU
has it) and rescaled to fp32. A token's activation scale comes from that token alone and the
integer product is exact, so a text's scores do not depend on which other texts (or how much
padding) share its batch, unlike ``torch.ao`` dynamic quantisation, whose activation scale is one
number for the whole batch.

Why not torchao's ``Int8DynamicActivationInt8WeightConfig``: it is the same scheme, but its CPU
path is written to be fused by ``torch.compile``; run eagerly it re-quantises through generic
affine primitives and measured slower than fp32 here (see ``evaluation/bench_classify.py``).
"""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import nn


class Precision(StrEnum):
    """How the encoder's linear layers compute."""

    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"


AUTO = "auto"
PRECISION_CHOICES = (AUTO, *(p.value for p in Precision))


def native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: Precision | str) -> Precision:
    """``auto`` is bf16 on a CPU with native bf16, else fp32; other names are taken as they are.

    Raises ``ValueError`` for an unknown name.
    """
    if precision == AUTO:
        return Precision.bf16 if native_bf16() else Precision.fp32
    return Precision(precision)


def _row_absmax_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-row symmetric int8 scale: the row's largest magnitude maps to 127."""
    return x.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-12).div_(127.0)


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with int8 per-channel weights and int8 per-row dynamic activations."""

    def __init__(self, weight_q: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features = int(weight_q.shape[1])
        self.out_features = int(weight_q.shape[0])
        # torch._int_mm takes (K, N): the transpose of the (N, K) weights, as a view
        self.register_buffer("weight_t", weight_q.contiguous().t(), persistent=False)
        self.register_buffer("weight_scale", weight_scale.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone(), persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        w = linear.weight.detach().to(torch.float32)
        scale = _row_absmax_scale(w)  # one per output channel
        weight_q = torch.round(w / scale).clamp_(-127, 127).to(torch.int8)
        return cls(weight_q, scale.squeeze(1), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).to(torch.float32)
        scale = _row_absmax_scale(x2)
        x_q = torch.div(x2, scale).round_().to(torch.int8)
        # cast first, then scale in place: ``int32 * fp32`` takes torch's slow mixed-dtype path
        # (about twice the time of the cast plus in-place products on the fp32 copy)
        out = torch._int_mm(x_q, self.weight_t).to(torch.float32)
        out.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-row activations"


BF16_OUTPUTS = ("attention.self.query", "attention.self.key", "attention.self.value", "intermediate.dense")
"""XLM-R layers (by name suffix) whose bf16 output goes on as bf16: their consumers (attention,
GELU and the next linear layer) take bf16; all other layers hand on fp32."""


class BF16Linear(nn.Module):
    """``y = x W^T + b`` with bf16 weights and inputs, fp32 accumulation, fp32 output (bf16 with
    ``bf16_output``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, bf16_output: bool = False) -> None:
        super().__init__()
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        self.bf16_output = bf16_output
        self.register_buffer("weight", weight.detach().to(torch.bfloat16).contiguous(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16).clone(), persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, bf16_output: bool = False) -> BF16Linear:
        return cls(linear.weight, linear.bias, bf16_output=bf16_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.linear(x if x.dtype == torch.bfloat16 else x.to(torch.bfloat16), self.weight, self.bias)
        return y if self.bf16_output else y.to(torch.float32)

    def extra_repr(self) -> str:
        out = "bf16" if self.bf16_output else "fp32"
        return f"in_features={self.in_features}, out_features={self.out_features}, bf16 weights, {out} output"


def convert_linears(module: nn.Module, precision: Precision | str) -> nn.Module:
    """Make every ``nn.Linear`` inside ``module`` (in place) compute at ``precision``.

    ``fp32`` leaves the module as it is; ``auto`` is resolved by :func:`resolve_precision`.
    """
    precision = resolve_precision(precision)
    if precision is Precision.fp32:
        return module
    for prefix, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear):
                continue
            if precision is Precision.int8:
                setattr(parent, name, Int8Linear.from_linear(child))
            else:
                full = f"{prefix}.{name}" if prefix else name
                setattr(parent, name, BF16Linear.from_linear(child, bf16_output=full.endswith(BF16_OUTPUTS)))
    return module


def quantize_linears(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``module`` (in place) by an :class:`Int8Linear`."""
    return convert_linears(module, Precision.int8)
