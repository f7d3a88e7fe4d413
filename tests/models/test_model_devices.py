"""The model modules carry every tensor with them (issue 11, point 14): after ``.to("meta")`` (PyTorch's
shape-only device, so this runs without a GPU) every parameter, buffer and tensor attribute is on meta, and the
inference wrapper puts its inputs on its own device. The CUDA run itself is in scripts/gpu_check.sh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from talkbench.models.inference import ReenactModel, frames_to_tensor
from talkbench.models.losses import CLUB, AAMSoftmax, PyramidPerceptualLoss
from talkbench.models.motion import PRESETS, Discriminator, MotionGenerator
from talkbench.models.train_motion import GeneratorStep


def off_device(module: nn.Module, device: str) -> list[str]:
    """Every tensor a module holds (parameters, buffers, plain tensor attributes of any submodule) not on device."""
    bad = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.device.type != device]
    for prefix, sub in module.named_modules():
        bad += [f"{prefix}.{k}" for k, v in vars(sub).items() if isinstance(v, torch.Tensor) and v.device.type != device]
    return sorted(set(bad))


def training_modules():
    cfg = PRESETS["tiny"]
    torch.manual_seed(0)
    gen = MotionGenerator(cfg)
    aam = AAMSoftmax(cfg.style_dim, 3)
    return {"generator": gen, "generator_step": GeneratorStep(gen, aam), "discriminator": Discriminator(cfg),
            "aam": aam, "club": CLUB(cfg.style_dim, cfg.style_dim, cfg.head_hidden),
            "perceptual": PyramidPerceptualLoss("none-l1-pyramid"),
            "generator_turn": MotionGenerator(PRESETS["tiny-turn"]),
            "generator_lips": MotionGenerator(PRESETS["tiny-lips"])}


@pytest.mark.parametrize("name", ["generator", "generator_step", "discriminator", "aam", "club", "perceptual",
                                  "generator_turn", "generator_lips"])
def test_training_modules_carry_every_tensor(name):
    module = training_modules()[name]
    assert off_device(module, "cpu") == []
    assert off_device(module.to("meta"), "meta") == [], name


def test_inference_wrapper_puts_model_and_inputs_on_its_device():
    from skimage.data import astronaut

    cfg = PRESETS["tiny"]
    model = ReenactModel(MotionGenerator(cfg), device="meta")
    assert model.device.type == "meta" and off_device(model.gen, "meta") == []
    frames = np.stack([astronaut()[:256, :256]] * 2)
    x = frames_to_tensor(frames, model.size, model.device)
    assert x.device.type == "meta" and x.shape == (2, 3, model.size, model.size)
    with torch.no_grad():
        enc = model.gen.encoder(x)  # runs on meta: every weight the encoder touches followed the model
    assert enc.alpha.device.type == "meta"
