"""Conformer encoder with espnet 202301 semantics (Gulati et al. 2020; espnet ``nets/pytorch_backend/conformer``).

What AniTalker's ``create_conformer_encoder`` selects, written here: no input layer; relative positional encoding
(input × √d, 2T−1 sinusoidal relative embeddings for positions T−1 … −(T−1)); blocks of
macaron ½-FFN → rel-pos MHSA (Transformer-XL biases ``pos_bias_u``/``pos_bias_v``, bias-free ``linear_pos``) →
convolution module (pointwise ×2 + GLU, depthwise kernel k, BatchNorm, swish, pointwise) → ½-FFN → LayerNorm, each
sub-layer post-LN (``normalize_before=False``); FFN and conv activations are swish; LayerNorm eps 1e-12.

Masks are (B, T) bool, True = a real frame. One deviation from espnet 202301: the conv module zeroes padded frames
before its depthwise convolution, so padding never leaks into real frames (espnet's version convolves over them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ConformerConfig:
    dim: int = 512
    heads: int = 2
    ffn_dim: int = 512  # AniTalker: linear_units = attention_dim
    blocks: int = 4
    kernel: int = 13
    dropout: float = 0.2  # dropout, positional dropout and attention dropout alike (AniTalker)


def rel_positional_encoding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 2T−1, dim) sinusoidal embeddings of relative positions T−1, T−2, …, −(T−1) (espnet RelPositionalEncoding)."""
    pos = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float32)[:, None]  # (2T-1, 1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe[None].to(dtype)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, 2T−1) scores against relative embeddings → (B, H, T, T) with out[..., i, j] = x[..., i, T−1−i+j],
    i.e. the score for relative position i − j (Transformer-XL's pad-and-reshape trick)."""
    b, h, t, n = x.shape
    padded = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
    return padded[:, :, 1:].reshape(b, h, t, n)[..., : n // 2 + 1]


class RelPositionAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.h, self.dk = heads, dim // heads
        self.linear_q, self.linear_k, self.linear_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.dk))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.dk))
        nn.init.xavier_uniform_(self.pos_bias_u), nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.dk)  # (B, T, H, dk)
        k = self.linear_k(x).view(b, t, self.h, self.dk).transpose(1, 2)  # (B, H, T, dk)
        v = self.linear_v(x).view(b, t, self.h, self.dk).transpose(1, 2)
        p = self.linear_pos(pos).view(pos.shape[0], -1, self.h, self.dk).transpose(1, 2)  # (1, H, 2T-1, dk)
        ac = (q + self.pos_bias_u).transpose(1, 2) @ k.transpose(-2, -1)  # content: (B, H, T, T)
        bd = rel_shift((q + self.pos_bias_v).transpose(1, 2) @ p.transpose(-2, -1))  # position: (B, H, T, T)
        scores = (ac + bd) / math.sqrt(self.dk)
        if mask is not None:
            keep = mask[:, None, None, :]  # (B, 1, 1, T)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        out = (self.dropout(attn) @ v).transpose(1, 2).reshape(b, t, -1)  # (B, T, D)
        return self.linear_out(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(nn.functional.silu(self.w_1(x))))


class ConvModule(nn.Module):
    """Pointwise (→2C) + GLU, depthwise (kernel k, same padding: non-causal, length-preserving), BatchNorm, swish,
    pointwise."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"conv kernel must be odd for same-length output, got {kernel}")
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2, groups=dim)
        self.norm = nn.BatchNorm1d(dim)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, C, T)
        if mask is not None:
            x = x.masked_fill(~mask[:, None, :], 0.0)
        x = nn.functional.silu(self.norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)  # (B, T, C)


class ConformerBlock(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        d = cfg.dim
        self.feed_forward_macaron = FeedForward(d, cfg.ffn_dim, cfg.dropout)
        self.self_attn = RelPositionAttention(d, cfg.heads, cfg.dropout)
        self.conv_module = ConvModule(d, cfg.kernel)
        self.feed_forward = FeedForward(d, cfg.ffn_dim, cfg.dropout)
        self.norm_ff_macaron, self.norm_mha, self.norm_conv, self.norm_ff, self.norm_final = (
            nn.LayerNorm(d, eps=1e-12) for _ in range(5))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, pos, mask=None):
        x = self.norm_ff_macaron(x + 0.5 * self.dropout(self.feed_forward_macaron(x)))
        x = self.norm_mha(x + self.dropout(self.self_attn(x, pos, mask)))
        x = self.norm_conv(x + self.dropout(self.conv_module(x, mask)))
        x = self.norm_ff(x + 0.5 * self.dropout(self.feed_forward(x)))
        return self.norm_final(x)


class Conformer(nn.Module):
    """(B, T, dim) → (B, T, dim). No input layer: the caller projects to ``dim`` first."""

    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        self.pos_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.blocks))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.shape[1]
        pos = self.pos_dropout(rel_positional_encoding(t, self.cfg.dim, x.device, x.dtype))  # (1, 2T-1, D)
        x = self.pos_dropout(x * math.sqrt(self.cfg.dim))
        for block in self.blocks:
            x = block(x, pos, mask)
        return x
