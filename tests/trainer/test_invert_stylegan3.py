"""Inversion on StyleGAN3: projecting an image the imported NVlabs StyleGAN3 drew from a known w
finds a latent that draws it again (W and W+, steps taken in each layer's style coordinates, no
noise maps to fit), pivotal tuning and the encoder work on the same model. Fixtures live outside
the project, in ../shared/fixtures/nvlabs; the tests skip when it is absent."""

import numpy as np
import pytest
import torch

from trainer import load_generator
from trainer.importers import import_network
from trainer.inversion.encoder import encoder_for_inversion, save_encoder
from trainer.inversion.encoder_train import EncoderTrainSettings, train_encoder
from trainer.inversion.losses import psnr
from trainer.inversion.project import ProjectionSettings, can_precondition, layer_affine_matrices, project
from trainer.inversion.pti import PTISettings, pivotal_tuning, save_tuned
from trainer.latents import LatentMapper, LatentState
from conftest import NVLABS_FIXTURES

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

FIXTURES = NVLABS_FIXTURES
NAME = "sg3-t-cond10-32"
CLASS = 3


@pytest.fixture(scope="module")
def sg3(tmp_path_factory):
    """(checkpoint path, G, target [1, 3, 32, 32] drawn from a known w of class 3, that w [1, 16, w_dim])."""
    if not (FIXTURES / f"{NAME}.pkl").is_file():
        pytest.skip(f"NVlabs StyleGAN3 fixtures not found at {FIXTURES} (../shared is absent)")
    path = tmp_path_factory.mktemp("sg3") / f"{NAME}.safetensors"
    import_network(FIXTURES / f"{NAME}.pkl", path)
    G = load_generator(path)
    mapper = LatentMapper(G)
    state = LatentState(seed=3, class_index=CLASS, psi=0.7)
    with torch.no_grad():
        ws = mapper.ws([state])
        target = mapper.images([state]).clamp(-1, 1)
    return path, G, target, ws


def start_psnr(G, target) -> float:
    """What the projection starts from (w_avg on every layer) scores against the target."""
    with torch.no_grad():
        return float(psnr(G.synthesis(G.w_avg[None, None].expand(1, G.num_ws, -1)), target))


def test_style_coordinates_follow_stylegan3_layers(sg3):
    _, G, _, _ = sg3
    matrices = layer_affine_matrices(G)
    assert can_precondition(G) and len(matrices) == G.num_ws == 16
    assert matrices[0].shape == (4, G.w_dim)                    # ws 0: the input's rotation and translation
    layers = G.synthesis.layers
    assert [m.shape[0] for m in matrices[1:]] == [layer.in_channels for layer in layers]   # layer i reads ws i + 1
    assert torch.equal(matrices[-1], (layers[-1].affine.weight * layers[-1].affine.weight_gain))


@pytest.mark.slow
@pytest.mark.parametrize("space", ["w", "w+"])
def test_projection_on_stylegan3_finds_the_drawn_image(sg3, space):
    _, G, target, ws = sg3
    settings = ProjectionSettings(space=space, steps=20, init="w_avg", report_every=5)
    result = project(G, target, settings, classes=[CLASS])
    start = start_psnr(G, target)
    final = float(result.psnr[0])
    assert final > start + 12, (start, final)                   # about 11 dB -> 25-28 dB in 20 steps
    assert np.all(np.diff(result.record["psnr"][:, 0]) >= 0)    # the best latent only improves
    assert result.noise == {} and any("no noise maps" in n for n in result.notes)
    assert result.ws.shape == (1, 16, G.w_dim)
    if space == "w":
        assert np.allclose(result.ws[0], result.ws[0, :1])      # one w on every layer
    with torch.no_grad():                                       # the saved latent draws what was reported
        again = G.synthesis(torch.from_numpy(result.ws))
    assert abs(float(psnr(again, target)) - final) < 1e-3
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))


@pytest.mark.slow
def test_pivotal_tuning_on_stylegan3(sg3, tmp_path):
    path, G, target, _ = sg3
    projected = project(G, target, ProjectionSettings(steps=5, init="w_avg"), classes=[CLASS])
    tuned = pivotal_tuning(G, torch.from_numpy(projected.ws[0]), target, PTISettings(steps=6, report_every=2))
    assert tuned.psnr > float(projected.psnr[0]) + 3 and tuned.locality_psnr > 15   # about 22 -> 29 dB
    out = tmp_path / "tuned.safetensors"
    save_tuned(tuned.G, out, path, "0" * 64, tuned.settings)
    reopened = load_generator(out)
    assert reopened.checkpoint_info["config"]["arch"] == "stylegan3-t"
    with torch.no_grad():
        assert float(psnr(reopened.synthesis(torch.from_numpy(projected.ws)), target)) == pytest.approx(tuned.psnr, abs=1e-3)


@pytest.mark.slow
def test_an_encoder_trains_on_stylegan3_and_starts_its_inversions(sg3, tmp_path):
    path, G, target, _ = sg3
    trained = train_encoder(G, EncoderTrainSettings(kimg=0.016, batch=4, eval_samples=4, width=8, max_width=16,
                                                    hidden=32))
    save_encoder(tmp_path / "enc.safetensors", trained.encoder, path, {"kimg": 0.016})
    encoder, note = encoder_for_inversion(G, True, str(tmp_path / "enc.safetensors"), str(path))
    assert encoder is not None, note
    result = project(G, target, ProjectionSettings(steps=2, init="encoder", encoder=str(tmp_path / "enc.safetensors")),
                     classes=[CLASS], checkpoint_path=str(path))
    assert result.start == "encoder" and result.ws.shape == (1, 16, G.w_dim)
