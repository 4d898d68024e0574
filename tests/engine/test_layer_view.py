"""The layer view in the engine: every synthesis layer of the demo, an exact StyleGAN2 and an
imported StyleGAN3 is listed and drawn from the same render as the image; the channels follow
the seed; the hook is put on once per layer choice; the spectrum of a known pattern peaks where
it should."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import export_tiny, needs_nvlabs_fixtures
from ganstudio.engine.controller import RenderController
from ganstudio.engine.layers import (LayerChoice, channel_grid, draw_layer, export_layer_view, layer_view_image,
                                     normalise_channels, power_spectrum_db)
from ganstudio.engine.renderer import Renderer
from ganstudio.engine.workspace import Workspace
from ganstudio.engine.demo import find_demo_checkpoint

DEMO = find_demo_checkpoint()
pytestmark = pytest.mark.usefixtures("one_thread")   # a shared machine: two threads spin against other work
DEMO_LAYERS = ["b4.conv1", "b4.torgb"] + [f"b{r}.{m}" for r in (8, 16, 32) for m in ("conv0", "conv1", "torgb")]


def opened(path) -> RenderController:
    controller = RenderController.inline(Workspace(), Renderer("cpu"))
    controller.open(path)
    assert controller.info is not None
    return controller


def listed(controller):
    got = []
    controller.layer_view.list_layers(got.append)
    return got[0]


@pytest.mark.slow
def test_every_layer_of_the_demo_is_listed_and_drawn():
    controller = opened(DEMO)
    layers = listed(controller)
    assert [layer.name for layer in layers] == DEMO_LAYERS
    assert [(layer.height, layer.kind) for layer in layers[:3]] == [(4, "conv"), (4, "torgb"), (8, "conv")]
    assert all(layer.channels == 1 for layer in layers if layer.kind == "torgb")   # the demo is grey
    for layer in layers:
        controller.layer_view.choose(LayerChoice(layer.name))
        view = controller.last_result.layer
        assert not view.error and view.name == layer.name and view.channels == layer.channels
        columns = int(np.ceil(np.sqrt(layer.channels)))   # a near-square grid, 1 px between cells
        rows = int(np.ceil(layer.channels / columns))
        shape = (rows * (layer.height + 1) - 1, columns * (layer.width + 1) - 1) if layer.channels > 1 else \
            (layer.height, layer.width)
        assert view.features.shape == (*shape, 3) and view.features.dtype == np.uint8
        assert view.spectrum.shape == (layer.height, layer.width, 3)
    assert controller.last_result.image.shape == (32, 32, 3)   # the image still comes with it


def test_an_exact_stylegan2_lists_its_blocks_layers(tmp_path):
    controller = opened(export_tiny(tmp_path / "sg2.safetensors", arch="stylegan2", resolution=16))
    assert [layer.name for layer in listed(controller)] == [
        "b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb", "b16.conv0", "b16.conv1", "b16.torgb"]


@needs_nvlabs_fixtures
@pytest.mark.slow
def test_every_layer_of_an_imported_stylegan3_is_listed_and_drawn(sg3_fixtures):
    for name in ("sg3-t-cond10-32", "sg3-r-32"):
        controller = opened(sg3_fixtures / f"{name}.safetensors")
        synthesis = controller.backend.renderer.G.synthesis
        layers = listed(controller)
        assert [layer.name for layer in layers] == ["input", *synthesis.layer_names]
        assert layers[-1].kind == "torgb" and layers[-1].channels == 3
        for layer in layers:
            assert (layer.height, layer.channels) == tuple(int(x) for x in layer.name.split("_")[1:]) \
                if layer.name.startswith("L") else True
            controller.layer_view.choose(LayerChoice(layer.name, channel=0))
            view = controller.last_result.layer
            assert not view.error and view.features.shape[:2] == (layer.height, layer.width)


def test_the_channels_follow_the_seed_and_the_hook_is_put_on_once_per_choice():
    controller = opened(DEMO)
    capture = controller.backend.renderer.layer_capture
    controller.layer_view.choose(LayerChoice("b16.conv0"))
    first = controller.last_result.layer.features
    controller.workspace.seed = 5
    second = controller.last_result.layer.features
    assert (first != second).mean() > 0.3
    controller.workspace.psi = 0.5
    assert capture.hooks_registered == 1   # three renders, one hook
    controller.layer_view.choose(LayerChoice("b32.conv1", channel=4))
    controller.workspace.seed = 6
    assert capture.hooks_registered == 2
    controller.layer_view.choose(None)   # the view closed: the hook goes, the images come without a layer
    controller.workspace.seed = 7
    assert controller.last_result.layer is None and capture._handle is None


def test_the_view_shows_the_layers_own_feature_maps():
    """One channel of b4.conv1, drawn by the view, equals that layer run by hand on the rendered
    W+ (const input, first w)."""
    controller = opened(DEMO)
    controller.workspace.seed = 3
    controller.layer_view.choose(LayerChoice("b4.conv1", channel=7))
    view, ws = controller.last_result.layer, controller.last_result.ws
    block = controller.backend.renderer.G.synthesis.b4
    with torch.inference_mode():
        maps = block.conv1(block.const[None], torch.from_numpy(ws[None, 0]), "const")[0]
    assert view.channel == 7
    assert np.array_equal(view.features, draw_layer(LayerChoice("x", 7), maps).features)
    assert view.value_range == pytest.approx((float(maps[7].min()), float(maps[7].max())))


def test_a_layer_the_model_lacks_is_an_error_in_the_view_not_in_the_image():
    controller = opened(DEMO)
    controller.layer_view.choose(LayerChoice("b64.conv0"))
    result = controller.last_result
    assert result.image is not None and not result.error
    assert "no layer b64.conv0" in result.layer.error


def test_the_spectrum_of_a_known_pattern_peaks_where_it_should():
    h, w = 32, 48
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    across = torch.cos(2 * torch.pi * 5 * x / w)        # 5 cycles across the width
    down = torch.cos(2 * torch.pi * 3 * y / h)          # 3 cycles down the height
    for maps, peaks in ((across[None], {(16, 19), (16, 29)}), (down[None], {(13, 24), (19, 24)})):
        db = power_spectrum_db(maps)
        top = set(map(tuple, np.argwhere(db.numpy() >= db.max().item() - 1e-3)))
        assert top == peaks
        assert db[16, 24] < db.max() - 40   # the mean is removed: at zero frequency only the window's leak
    both = power_spectrum_db(torch.stack([across, down]))   # channels add their power
    assert both[16, 29] > both.mean() + 15 and both[19, 24] > both.mean() + 15


def test_channels_are_normalised_each_on_its_own_and_laid_out_in_a_grid():
    maps = torch.stack([torch.full((4, 4), 7.0), torch.arange(16.0).reshape(4, 4) * 100,
                        -torch.arange(16.0).reshape(4, 4), torch.zeros(4, 4), torch.ones(4, 4)])
    unit = normalise_channels(maps)
    assert torch.allclose(unit[0], torch.tensor(0.5))   # a flat channel is mid grey
    assert unit[1].min() == 0 and unit[1].max() == 1 and unit[2][0, 0] == 1 and unit[2][3, 3] == 0
    grid, columns, cell = channel_grid(unit)
    assert (columns, cell, tuple(grid.shape)) == (3, 5, (9, 14))   # 3 x 2 cells of 4 px with 1 px gaps
    assert torch.equal(grid[0:4, 5:9], unit[1]) and torch.equal(grid[5:9, 0:4], unit[3])
    assert grid[4, 0] == grid[0, 4] != 0   # the gaps: grey, not a channel's black


def test_the_view_exports_as_png(tmp_path):
    controller = opened(DEMO)
    controller.layer_view.choose(LayerChoice("b8.conv1"))
    view = controller.last_result.layer
    export_layer_view(tmp_path / "layer.png", view)
    saved = np.asarray(Image.open(tmp_path / "layer.png"))
    assert np.array_equal(saved, layer_view_image(view))
    height, width = view.features.shape[:2]   # the 8x8 spectrum, scaled up by a whole factor, beside the channels
    factor = height // 8
    assert saved.shape == (height, width + 8 + 8 * factor, 3)
    assert np.array_equal(saved[:, :width], view.features)
    assert np.array_equal(saved[:8 * factor:factor, width + 8::factor], view.spectrum)
