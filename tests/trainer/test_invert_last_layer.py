"""The last ws layer solved exactly at each projection step (trainer/inversion/last_layer.py), on
real NVlabs-exact generators and the demo."""
import numpy as np
import pytest
import torch

from ganstudio.engine.demo import find_demo_checkpoint
from trainer import load_generator
from trainer.config import DataConfig
from trainer.data.datasets import load_dataset
from trainer.inversion.last_layer import LastLayerSolver, solvable
from trainer.inversion.losses import DEFAULT_LOSSES, detail_error
from trainer.inversion.project import ProjectionSettings, StylePreconditioner, project

from conftest import export_tiny

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_generator(export_tiny(tmp_path_factory.mktemp("g") / "g.safetensors", arch="stylegan2", c_dim=0))


def mapped(G, seed, n=3):
    with torch.no_grad():
        return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)), None)


def test_where_the_last_layer_draws_linearly(tiny, tmp_path):
    assert solvable(tiny, DEFAULT_LOSSES) and solvable(tiny, {"mse": 1.0})
    assert not solvable(tiny, {"mse": 1.0, "ssim": 0.5})         # SSIM is not quadratic in the pixels
    for arch in ("stylegan2-compact", "stylegan3-t"):            # their last layers are not a lone linear toRGB
        other = load_generator(export_tiny(tmp_path / f"{arch}.safetensors", arch=arch, c_dim=0))
        assert not solvable(other, DEFAULT_LOSSES)
        result = project(other, other.synthesis(mapped(other, 1, 1)).detach(), ProjectionSettings(steps=3))
        assert np.isfinite(result.psnr).all()                    # and projection simply steps every layer


def test_the_columns_are_the_last_toRGB_exactly(tiny):
    ws = mapped(tiny, 0)
    solver = LastLayerSolver(tiny, StylePreconditioner(tiny, ws), DEFAULT_LOSSES)
    torgb = tiny.synthesis.blocks[-1].torgb
    features = torch.randn(3, torgb.weight.shape[1], 16, 16)
    with torch.no_grad():
        drawn = torgb(features, ws[:, -1])
        by_difference = torch.stack([torgb(features, ws[:, -1] + 0.5 * p) - drawn for p in solver.pinv.T], -1) / 0.5
    assert torch.allclose(solver.columns(features), by_difference, atol=1e-4)


def test_each_step_leaves_no_gradient_on_the_last_layer(tiny):
    """The solved offset is the minimum of the loss over the last layer: the loss's gradient there
    is nil (up to the small damping toward the start), and the loss is below the start's."""
    ws, targets = mapped(tiny, 0), None
    with torch.no_grad():
        targets = tiny.synthesis(mapped(tiny, 5), noise_mode="const")
    styles = StylePreconditioner(tiny, ws)
    solver = LastLayerSolver(tiny, styles, DEFAULT_LOSSES)

    def loss_and_gradient(offset):
        offset = offset.clone().requires_grad_(True)
        images = tiny.synthesis(styles.ws(styles.offsets[:-1] + [offset]), noise_mode="const")
        loss = ((images - targets).square().flatten(1).mean(1) + 3 * detail_error(images, targets)).sum()
        return loss.item(), torch.autograd.grad(loss, offset)[0]

    start_loss, start_gradient = loss_and_gradient(torch.zeros_like(solver.solved))
    solver.draw(solver.ws(), targets)
    solved_loss, solved_gradient = loss_and_gradient(solver.solved)
    assert solved_loss < start_loss
    assert solved_gradient.norm() < 2e-3 * start_gradient.norm(), (solved_gradient.norm(), start_gradient.norm())


@pytest.mark.slow
def test_on_the_demo_it_fits_closer_in_the_same_steps():
    path = find_demo_checkpoint()
    if path is None:
        pytest.skip("the demo checkpoint is not shipped in this checkout")
    G = load_generator(path)
    ds = load_dataset(DataConfig(source="fashion-mnist", split="test", resolution=32, channels=1, max_images=4))
    targets = ds.data.float() / 127.5 - 1
    solved = project(G, targets, ProjectionSettings(steps=40))
    stepped = project(G, targets, ProjectionSettings(steps=40, solve_last_layer=False))
    assert solved.psnr.mean() > stepped.psnr.mean() + 1.0, (solved.psnr, stepped.psnr)   # 34.5 against 32.5 dB
