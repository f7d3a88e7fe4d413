"""Losses of the motion model: reconstruction (L1, pyramid perceptual), non-saturating GAN, identity metric
learning (AAM-softmax, triplet) and the CLUB mutual-information upper bound."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, TalkbenchError
from .vgg import VGG19Features, image_pyramid, load_vgg19

# Perceptual loss choices. "vgg19" is the LIA recipe and needs the registry entry ``vgg19`` installed.
# "none-l1-pyramid" is the documented fallback when no VGG19 weights are available: an L1 over the same image
# pyramid, no feature network at all (weaker on texture; the checkpoint cfg records which one trained the model).
# "vgg19-random" runs the VGG19 graph with random weights: same compute, no perceptual meaning; for benchmarks only.
PERCEPTUAL = ("vgg19", "none-l1-pyramid", "vgg19-random")
PYRAMID_SCALES = (1.0, 0.5, 0.25, 0.125)  # LIA vgg19.py VGGLoss scales
VGG_LAYER_WEIGHTS = (10.0, 10.0, 10.0, 10.0, 10.0)  # LIA vgg19.py VGGLoss weights
# The pixel fallback weights each pyramid level by 10 like the VGG layers, so its size next to the GAN term (weight 1)
# stays close to the LIA recipe's. Measured on the one-clip overfit (tiny, 140 steps, GAN on): level weight 1 let
# the GAN term dominate (PSNR ~16 dB, D winning); level weight 10 reached ~19-20 dB.
FALLBACK_LEVEL_WEIGHT = 10.0


class PyramidPerceptualLoss(nn.Module):
    """Σ_scales Σ_layers w_l · mean|φ_l(x_s) − φ_l(y_s)| (FOMM / LIA), or the pixel-L1 pyramid fallback."""

    def __init__(self, kind: str = "vgg19"):
        super().__init__()
        if kind not in PERCEPTUAL:
            raise ValueError(f"unknown perceptual loss {kind!r}; choose from {sorted(PERCEPTUAL)}")
        self.kind = kind
        self.vgg = None
        if kind == "vgg19":
            try:
                self.vgg = load_vgg19()
            except TalkbenchError as exc:
                raise ConfigError(f"perceptual='vgg19' needs the VGG19 ImageNet weights: {exc}; "
                                  "or train with --perceptual none-l1-pyramid (documented fallback)") from exc
        elif kind == "vgg19-random":
            self.vgg = VGG19Features().eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros((), dtype=torch.float32)
        for xs, ys in zip(image_pyramid(x, PYRAMID_SCALES), image_pyramid(y, PYRAMID_SCALES)):
            if self.vgg is None:
                loss = loss + FALLBACK_LEVEL_WEIGHT * (xs - ys).abs().float().mean()
                continue
            feats = self.vgg(torch.cat([xs, ys]))
            for w, f in zip(VGG_LAYER_WEIGHTS, feats):
                a, b = f.chunk(2)
                loss = loss + w * (a - b.detach()).abs().float().mean()
        return loss


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits.float()).mean()


def d_nonsaturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace, Deng et al. 2019): logits s·cos(θ_y + m) for the true class."""

    def __init__(self, dim: int, n_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(emb.float()), F.normalize(self.weight.float())).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        target = torch.cos(theta + self.margin)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = torch.where(onehot, target, cos) * self.scale
        return F.cross_entropy(logits, labels)


def triplet_loss(anchor, positive, negative, margin: float = 0.2, mask: torch.Tensor | None = None):
    """max(0, d(a, p) − d(a, n) + margin) with cosine distance; rows where mask is False are skipped."""
    a, p, n = (F.normalize(t.float(), dim=-1) for t in (anchor, positive, negative))
    per = F.relu((1 - (a * p).sum(-1)) - (1 - (a * n).sum(-1)) + margin)
    if mask is not None:
        m = mask.float()
        return (per * m).sum() / m.sum().clamp(min=1)
    return per.mean()


class CLUB(nn.Module):
    """CLUB (Cheng et al., ICML 2020): I(x; y) ≤ E_p(x,y)[log q(y|x)] − E_p(x)E_p(y)[log q(y|x)].

    q(y|x) = N(μ(x), diag σ²(x)) is fitted by maximum likelihood (``learning_loss``) in its own optimiser step,
    alternating with the encoder step that minimises ``forward`` (the MI estimate).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int):
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim), nn.Tanh())

    def _stats(self, x):
        x = x.float()
        return self.mu(x), self.logvar(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, logvar = self._stats(x)  # (N, D)
        y = y.float()
        inv_var = torch.exp(-logvar)
        positive = -((mu - y) ** 2 * inv_var).sum(-1) / 2  # (N,)
        # mean over all y_j of -(μ_i - y_j)^2 / 2σ_i^2, expanded to avoid an N×N×D tensor
        y_mean, y_sq_mean = y.mean(0), (y ** 2).mean(0)
        negative = -((mu ** 2 - 2 * mu * y_mean + y_sq_mean) * inv_var).sum(-1) / 2  # (N,)
        return (positive - negative).mean()

    def log_likelihood(self, x, y):
        mu, logvar = self._stats(x)
        return (-((mu - y.float()) ** 2) * torch.exp(-logvar) - logvar).sum(-1).mean()

    def learning_loss(self, x, y):
        return -self.log_likelihood(x, y)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in [-1, 1] (data range 2), averaged over the batch."""
    mse = ((x.float().clamp(-1, 1) - y.float()) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    return (10 * torch.log10(4.0 / mse)).mean()
