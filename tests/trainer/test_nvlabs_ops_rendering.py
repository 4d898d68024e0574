"""The NVlabs-exact StyleGAN2's CPU rendering path (trainer/models/nvlabs_ops.py: inference on CPU
takes channels-last kernels, toRGB as a matmul, the bias inside the convolution, fp32 styles and
kept oneDNN kernels) computes what the training formulation computes, follows in-place edits of
the weights, and renders bf16 within the studio's 40 dB of fp32."""
import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganstudio.engine.render_settings import psnr, set_channels_last
from trainer.images import to_uint8
from trainer.models.nvlabs_ops import PreparedWeight, static_conv2d
from trainer.models.stylegan2_nvlabs import NVlabsGenerator, NVlabsGeneratorConfig


def generator(resolution=32, seed=0) -> NVlabsGenerator:
    """Random weights with trained-looking biases and noise strengths (zero at initialisation)."""
    torch.manual_seed(seed)
    G = NVlabsGenerator(NVlabsGeneratorConfig(z_dim=64, w_dim=64, layer_features=64, mapping_layers=2,
                                              img_resolution=resolution, channel_base=1024, channel_max=64)).eval()
    with torch.no_grad():
        for name, p in G.synthesis.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias"):
                p.normal_(0, 0.2)
    return G


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_rendering_matches_the_training_formulation(batch, channels_last):
    G = generator()
    set_channels_last(G.synthesis, channels_last)
    ws = G.mapping(torch.randn(batch, 64), None).detach()
    trained = G.synthesis(ws)                 # weights want gradients: NVlabs' order of operations
    assert trained.requires_grad
    with torch.no_grad():
        rendered = G.synthesis(ws)
    with torch.inference_mode():
        rendered_again = G.synthesis(ws)
    assert rendered.dtype == torch.float32 and rendered.is_contiguous()
    assert (rendered - trained.detach()).abs().max() < 1e-5
    assert torch.equal(rendered, rendered_again)


def test_bf16_rendering_is_within_40_db_of_fp32():
    G = generator(64)
    with torch.inference_mode():
        ws = G.mapping(torch.randn(4, 64), None)
        full = G.synthesis(ws)
        with torch.autocast("cpu", torch.bfloat16):
            short = torch.cat([G.synthesis(w[None]) for w in ws])
    assert short.dtype == torch.float32                    # the image is kept fp32, as NVlabs keeps it
    assert psnr(to_uint8(short), to_uint8(full)) >= 40


def test_kept_kernels_and_affines_follow_in_place_edits():
    """A blend or an edit writes the weights in place: the next render uses them, as a fresh copy does."""
    G, fresh = generator(), generator(seed=1)
    ws = G.mapping(torch.randn(1, 64), None).detach()
    with torch.inference_mode():
        G.synthesis(ws)                                    # fills every cache
    with torch.no_grad():
        for p, q in zip(G.parameters(), fresh.parameters()):
            p.copy_(q)                                     # in place, as the blend panel writes
        for b, c in zip(G.buffers(), fresh.buffers()):
            b.copy_(c)
    with torch.inference_mode():
        assert torch.equal(G.synthesis(ws), fresh.synthesis(ws))


def test_a_rendered_model_copies_and_pickles():
    """What layers keep between renders (oneDNN's kernels cannot be copied) starts empty in a copy."""
    G = generator()
    ws = G.mapping(torch.randn(1, 64), None).detach()
    with torch.inference_mode():
        image = G.synthesis(ws)
    twin, thawed = copy.deepcopy(G), pickle.loads(pickle.dumps(G))
    with torch.inference_mode():
        assert torch.equal(twin.synthesis(ws), image) and torch.equal(thawed.synthesis(ws), image)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_onednn_kernel_computes_conv2d(dtype):
    x = torch.randn(1, 32, 9, 9, dtype=dtype).contiguous(memory_format=torch.channels_last)
    prepared = PreparedWeight()
    for kernel in ([24, 32, 3, 3], [24, 32, 2, 1]):
        w = torch.randn(kernel, dtype=dtype).contiguous(memory_format=torch.channels_last)
        padding = (kernel[2] // 2, kernel[3] // 2)
        with torch.inference_mode():
            expected = F.conv2d(x, w, padding=padding)
            for _ in range(2):                             # the second call reads the kept kernel
                got = static_conv2d(x, w, padding, prepared)
                assert (got - expected).abs().max() <= 1e-6 * expected.abs().max()   # oneDNN may pick another algorithm
    assert len(prepared.packed) == 2


def test_gradients_still_reach_ws_through_cached_weights():
    """Inversion: ws want gradients, the weights do not; the rendering path is not taken."""
    G = generator().requires_grad_(False)
    ws = G.mapping(torch.randn(1, 64), None).detach().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and np.isfinite(ws.grad.numpy()).all() and ws.grad.abs().sum() > 0
