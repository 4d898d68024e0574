"""Each process fast: mixed precision keeps StyleGAN2's lowest resolutions in fp32 and clamps the
rest, fp16 trains with a gradient scaler, and the options are checked like every other."""
from __future__ import annotations

import pytest
import torch

from trainer.config import ConfigError, TrainConfig
from trainer.training.loop import Trainer
from trainer.models.stylegan2 import ACTIVATION_CLAMP, StyleGAN2Discriminator, StyleGAN2Generator
from trainer.training.precision import resolve_precision


def test_autocast_keeps_low_resolutions_fp32_and_clamps_the_others():
    G = StyleGAN2Generator(16, 0, 16, 64, 3, width=8, max_width=16, mapping_layers=2)
    D = StyleGAN2Discriminator(0, 64, 3, width=8, max_width=16)
    dtypes = {}
    def record(block, inputs, outputs):
        dtypes.setdefault(block.resolution, outputs[0].dtype)

    for block in G.synthesis.blocks:
        block.register_forward_hook(record)
    with torch.no_grad():
        G.synthesis.blocks[2].conv1.weight.mul_(1e6)   # activations far beyond fp16's comfort
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img = G(torch.randn(2, 16), noise_mode="random")
            logits, _ = D(img)
    assert dtypes[4] == torch.float32                       # below the 4 highest resolutions
    assert {dtypes[r] for r in (8, 16, 32, 64)} == {torch.bfloat16}
    assert logits.dtype == torch.float32                      # D's 4x4 epilogue
    assert img.abs().max() <= 4 * ACTIVATION_CLAMP            # clamped per layer, then summed over 4 RGB layers
    plain = G(torch.randn(2, 16))
    assert plain.dtype == torch.float32                       # no autocast: nothing changes


def test_fp16_trains_with_a_gradient_scaler_and_saves_its_state(tiny, tmp_path):
    cfg = tiny("stylegan2", train={"precision": "fp16", "r1_gamma": 1.0, "r1_every": 1, "pl_weight": 2.0,
                                   "pl_every": 1, "threads": 1})
    trainer = Trainer(cfg, tmp_path, progress=False)
    for _ in range(2):
        stats = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert trainer.scaler_G.is_enabled() and trainer.state_dict()["scaler_G"]["scale"] > 0
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())


def test_precision_choices():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp8"})
    with pytest.raises(ConfigError, match="--batch-gpu"):
        TrainConfig.from_dict({"batch_gpu": -1})
