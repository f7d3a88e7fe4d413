"""The espnet-semantics Conformer, module by module, against plain re-computations written here."""

import math

import pytest
import torch

from talkbench.models.conformer import (ConformerConfig, Conformer, ConvModule, RelPositionAttention,
                                        rel_positional_encoding, rel_shift)


def test_rel_shift_picks_relative_position_i_minus_j():
    b, h, t = 2, 3, 7
    x = torch.randn(b, h, t, 2 * t - 1)
    out = rel_shift(x)
    assert out.shape == (b, h, t, t)
    for i in range(t):
        for j in range(t):
            # column k of x holds relative position T-1-k; i - j lives at k = T-1-(i-j)
            assert torch.equal(out[:, :, i, j], x[:, :, i, t - 1 - i + j])


def test_rel_positional_encoding_layout():
    pe = rel_positional_encoding(5, 8)
    assert pe.shape == (1, 9, 8)
    # centre row is relative position 0: sin 0 = 0, cos 0 = 1
    torch.testing.assert_close(pe[0, 4], torch.tensor([0.0, 1.0] * 4))
    # row k is position T-1-k: row 0 is +4, and sin is odd in the position
    torch.testing.assert_close(pe[0, 0, 0::2], -pe[0, 8, 0::2])
    torch.testing.assert_close(pe[0, 0, 1::2], pe[0, 8, 1::2])
    assert pe[0, 0, 0].item() == pytest.approx(math.sin(4.0))


def brute_force_attention(attn: RelPositionAttention, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-XL relative attention written plainly: score(i, j) = (q_i + u)·k_j + (q_i + v)·W_pos pe(i − j)."""
    b, t, _ = x.shape
    h, dk = attn.h, attn.dk
    q = attn.linear_q(x).view(b, t, h, dk)
    k = attn.linear_k(x).view(b, t, h, dk)
    v = attn.linear_v(x).view(b, t, h, dk)
    out = torch.zeros(b, t, h, dk)
    for i in range(t):
        scores = torch.zeros(b, h, t)
        for j in range(t):
            rel = torch.zeros(1, dim)
            pos = i - j
            div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
            rel[0, 0::2], rel[0, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
            p = attn.linear_pos(rel).view(h, dk)
            scores[:, :, j] = ((q[:, i] + attn.pos_bias_u) * k[:, j]).sum(-1) + ((q[:, i] + attn.pos_bias_v) * p).sum(-1)
        w = torch.softmax(scores / math.sqrt(dk), dim=-1)  # (B, H, T)
        out[:, i] = torch.einsum("bhj,bjhd->bhd", w, v)
    return attn.linear_out(out.reshape(b, t, h * dk))


def test_rel_pos_attention_equals_brute_force():
    torch.manual_seed(0)
    dim, t = 8, 6
    attn = RelPositionAttention(dim, heads=2, dropout=0.0).eval()
    assert attn.linear_pos.bias is None and attn.pos_bias_u.shape == (2, 4)
    x = torch.randn(2, t, dim)
    fast = attn(x, rel_positional_encoding(t, dim))
    torch.testing.assert_close(fast, brute_force_attention(attn, x, dim), rtol=1e-5, atol=1e-5)


def test_conv_module_is_length_preserving_and_non_causal():
    torch.manual_seed(0)
    conv = ConvModule(6, kernel=13).eval()
    x = torch.randn(1, 40, 6)
    y = conv(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[0, 20] += 1.0
    changed = ((conv(x2) - y).abs().amax(-1)[0] > 0).nonzero().flatten().tolist()
    assert changed == list(range(14, 27))  # frames 20 ± 6: the future and the past both see it
    with pytest.raises(ValueError, match="odd"):
        ConvModule(6, kernel=12)


def test_padding_does_not_change_real_frames():
    torch.manual_seed(0)
    model = Conformer(ConformerConfig(dim=16, heads=2, ffn_dim=16, blocks=2, kernel=5, dropout=0.2)).eval()
    x = torch.randn(1, 9, 16)
    alone = model(x)
    padded = torch.cat([x, torch.randn(1, 4, 16) * 5], dim=1)
    mask = torch.tensor([[True] * 9 + [False] * 4])
    torch.testing.assert_close(model(padded, mask)[:, :9], alone, rtol=1e-5, atol=1e-5)
    # without the mask the padding leaks in (the test can fail)
    assert (model(padded)[:, :9] - alone).abs().max() > 1e-3


def test_block_layout_and_sizes():
    model = Conformer(ConformerConfig(dim=512, heads=2, ffn_dim=512, blocks=4, kernel=13))
    block = model.blocks[0]
    names = [n for n, _ in block.named_children()]
    assert names[:4] == ["feed_forward_macaron", "self_attn", "conv_module", "feed_forward"]
    assert block.conv_module.depthwise_conv.kernel_size == (13,) and block.conv_module.depthwise_conv.groups == 512
    # per block: 2 FFN (2·(512·512+512)·2) + attention (4·(512²+512) + 512² + 2·512) + conv + 5 LayerNorms
    ffn = 2 * 2 * (512 * 512 + 512)
    att = 4 * (512 * 512 + 512) + 512 * 512 + 2 * 512
    conv = (512 * 1024 + 1024) + (512 * 13 + 512) + 2 * 512 + (512 * 512 + 512)
    assert sum(p.numel() for p in block.parameters()) == ffn + att + conv + 5 * 2 * 512


def test_conformer_state_follows_to_meta():
    model = Conformer(ConformerConfig(dim=8, heads=2, ffn_dim=8, blocks=1, kernel=3)).to("meta")
    assert all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])
    assert model(torch.empty(2, 5, 8, device="meta")).shape == (2, 5, 8)
