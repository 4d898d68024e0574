"""The studio's Qt-free engine: latent maths, the workspace model, the renderer, the demo finder."""
import json

import numpy as np
import pytest

from ganstudio.engine.demo import find_demo_checkpoint
from ganstudio.engine.from_workspace import request_from_workspace
from ganstudio.engine.renderer import MixingGrid, Renderer, RenderRequest
from ganstudio.engine.workspace import Workspace, WorkspaceError
from trainer import CheckpointError
from trainer.latents import LatentState, seed_to_z

from conftest import CLASS_NAMES, export_tiny  # noqa: F401

@pytest.fixture
def tiny_ckpt(tmp_path):
    return export_tiny(tmp_path / "tiny.safetensors")


@pytest.fixture
def renderer(tiny_ckpt):
    r = Renderer("cpu")
    r.load(tiny_ckpt)
    return r


def request(renderer, request_id=1, row_seeds=(), col_seeds=(), **latent):
    """A render request for the open model: LatentState fields, and a grid when seeds are given."""
    if renderer.info.c_dim:
        latent.setdefault("class_index", 0)
    grid = MixingGrid(tuple(row_seeds), tuple(col_seeds)) if row_seeds or col_seeds else None
    return RenderRequest(request_id, renderer.generation, LatentState(**latent), grid=grid)


def render(renderer, **fields):
    result = renderer.render(request(renderer, **fields))
    assert not result.error, result.error
    return result


# ---- workspace ----
def test_workspace_emits_only_real_changes():
    ws = Workspace()
    seen = []
    ws.events.changed.connect(seen.append)
    psi_values = []
    ws.events.psi.connect(psi_values.append)
    ws.psi = 0.7          # the default: no event
    ws.psi = 0.3
    ws.seed = 5
    ws.base_ws = np.zeros((2, 3), np.float32)
    ws.base_ws = np.zeros((2, 3), np.float32)  # equal array: no event
    ws.direction_offsets = {"PC1": 1.0}
    ws.direction_offsets = {"PC1": 1.0}
    assert seen == ["psi", "seed", "base_ws", "direction_offsets"] and psi_values == [0.3]
    with pytest.raises(WorkspaceError):
        ws.update(no_such_field=1)


def test_workspace_file_round_trip_and_bad_files(tmp_path):
    ws = Workspace(seed=9, psi=-0.5, cutoff=3, mix_layers=(True, False), base_ws=np.arange(6, dtype=np.float32).reshape(2, 3),
                   base_noise={"b.conv": np.full((4, 4), 0.25, np.float32)}, directions={"PC1": np.ones(3, np.float32)}, direction_offsets={"PC1": 1.5}, direction_layers=(1, None))
    ws.save(tmp_path / "w.json")
    back = Workspace.load(tmp_path / "w.json")
    assert back.seed == 9 and back.psi == -0.5 and back.cutoff == 3 and back.mix_layers == (True, False)
    assert np.array_equal(back.base_ws, ws.base_ws) and np.array_equal(back.directions["PC1"], np.ones(3))
    assert np.array_equal(back.base_noise["b.conv"], ws.base_noise["b.conv"])
    assert back.direction_offsets == {"PC1": 1.5} and back.direction_layers == (1, None)
    d = ws.to_dict()
    for field, value, words in [("noise_mode", "loud", "noise_mode"), ("seed", -1, "seed"), ("psi", "x", "psi"),
                                ("base_ws", [[1, "a"]], "base_ws"), ("mix_layers", [1, 0], "mix_layers"),
                                ("base_noise", {"b.conv": [1, 2]}, "b.conv"), ("base_noise", [1], "base_noise")]:
        with pytest.raises(WorkspaceError, match=words):
            Workspace.from_dict({**d, field: value})
    with pytest.raises(WorkspaceError, match="unknown"):
        Workspace.from_dict({**d, "extra": 1})
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(WorkspaceError, match="junk.json"):
        Workspace.load(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(WorkspaceError, match="not a GAN Studio workspace"):
        Workspace.load(tmp_path / "other.json")


# ---- renderer ----
def test_renderer_model_info_and_determinism(renderer, tiny_ckpt):
    info = renderer.info
    assert info.class_names == tuple(CLASS_NAMES) and info.num_ws == 6 and info.has_w
    assert info.layer_resolutions == (4, 8, 8, 16, 16, 16)
    a, b = render(renderer, seed=1), render(renderer, seed=1)
    assert a.image.dtype == np.uint8 and a.image.shape == (16, 16, 3)
    assert np.array_equal(a.image[..., 0], a.image[..., 2])  # grey model shows as grey
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, render(renderer, seed=2).image)
    assert np.array_equal(a.z, seed_to_z(1, 16))


def test_renderer_truncation_class_center_noise(renderer):
    G = renderer.G
    base = render(renderer, seed=3, psi=1.0)
    zero_global = render(renderer, seed=3, psi=0.0, truncation_center="global")
    assert np.allclose(zero_global.ws, G.w_avg.numpy()[None].repeat(6, 0))
    assert np.array_equal(zero_global.image, render(renderer, seed=99, psi=0.0).image)  # every seed -> the mean
    zero_class = render(renderer, seed=3, psi=0.0, truncation_center="class", class_index=1)
    assert np.allclose(zero_class.ws[0], renderer.class_means[1].numpy(), atol=1e-6)
    assert not np.array_equal(zero_class.image, zero_global.image)
    cut = render(renderer, seed=3, psi=0.0, cutoff=2)
    assert np.allclose(cut.ws[2:], base.ws[2:]) and not np.allclose(cut.ws[:2], base.ws[:2])
    assert not np.array_equal(base.image, render(renderer, seed=3, psi=1.0, class_index=2).image)
    assert not np.array_equal(base.image, render(renderer, seed=3, psi=1.0, noise_mode="none").image)
    r1, r2 = render(renderer, seed=3, noise_mode="random"), render(renderer, seed=3, noise_mode="random")
    assert not np.array_equal(r1.image, r2.image)


def test_grid_cells_equal_single_renders_with_their_w_plus(renderer):
    mask = (False, False, False, True, True, True)
    grid = renderer.render(request(renderer, 2, class_index=0, psi=0.8, mix_mask=mask, row_seeds=(1, 2),
                                   col_seeds=(7, 8, 9)))
    assert not grid.error and grid.is_grid
    res, cell = 16, grid.cell_size
    assert grid.image.shape == (3 * cell - 1, 4 * cell - 1, 3) and grid.cell_ws.shape == (2, 3, 6, 16)
    single = render(renderer, seed=2, mix_seed=9, mix_mask=mask, psi=0.8)
    tile = grid.image[2 * cell:2 * cell + res, 3 * cell:3 * cell + res]
    assert np.array_equal(tile, single.image)
    assert np.allclose(grid.cell_ws[1, 2], single.mixed_ws)
    again = render(renderer, seed=123, ws=grid.cell_ws[1, 2], psi=0.8)  # the mix as an explicit W+
    assert np.array_equal(again.image, single.image)
    header = grid.image[0:res, 3 * cell:3 * cell + res]
    assert np.array_equal(header, render(renderer, seed=9, psi=0.8).image)


def test_directions_move_the_image_in_the_chosen_layers(renderer):
    directions = renderer.compute_directions(num_samples=600, num_components=4)
    assert [k for k in directions][:4] == ["PC1", "PC2", "PC3", "PC4"]
    assert {"to tee", "to trouser", "to pullover"} <= set(directions)
    base = render(renderer, seed=4)
    moved = render(renderer, seed=4, w_offset=2 * directions["PC1"], offset_layers=(2, 5))
    assert np.allclose(moved.ws[2:5] - base.ws[2:5], 2 * directions["PC1"], atol=1e-5)
    assert np.allclose(moved.ws[[0, 1, 5]], base.ws[[0, 1, 5]])
    assert not np.array_equal(moved.image, base.image)
    assert directions.keys() == renderer.compute_directions(num_samples=600, num_components=4).keys()


def test_z_only_and_point_models(tmp_path):
    r = Renderer("cpu")
    info = r.load(export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan", c_dim=0))
    assert not info.has_w and info.class_names == ()
    a = r.render(request(r, 1, seed=5))
    b = r.render(request(r, 2, seed=5, z_threshold=0.3))
    assert not a.error and a.image.shape == (16, 16, 3) and not np.array_equal(a.image, b.image)
    assert np.abs(b.z).max() <= 0.3
    grid = r.render(request(r, 3, row_seeds=(1,), col_seeds=(2,)))
    assert "W space" in grid.error
    r.load(export_tiny(tmp_path / "mlp.safetensors", arch="mlp", c_dim=0))
    points = r.render(request(r, 4, seed=1))
    assert not points.error and points.image.shape == (256, 256, 3) and r.info.is_points


def test_bad_checkpoint_keeps_the_open_model(renderer, tmp_path):
    before = render(renderer, seed=1).image
    generation = renderer.generation
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(CheckpointError, match="pickle"):
        renderer.load(tmp_path / "model.pkl")
    assert renderer.generation == generation and np.array_equal(render(renderer, seed=1).image, before)
    stale = renderer.render(RenderRequest(request_id=5, generation=generation - 1))
    assert "no longer open" in stale.error


def test_request_from_workspace_ignores_settings_that_do_not_fit(renderer):
    ws = Workspace(seed=5, class_index=9, mix_layers=(True,) * 3, base_ws=np.zeros((2, 2), np.float32),
                   directions={"PC1": np.ones(16, np.float32)}, direction_offsets={"PC1": 0.5})
    req = request_from_workspace(ws, renderer.info, 7)
    assert req.latent.class_index == 2 and req.latent.mix_mask == () and req.latent.ws is None
    assert np.allclose(req.latent.w_offset, 0.5) and not req.is_grid
    assert request_from_workspace(ws, renderer.info, 8, grid=True).is_grid


def test_find_demo_prefers_the_newest_step(tmp_path):
    assert find_demo_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    for step in ("step-000900", "step-012000", "step-001000"):
        (tmp_path / "checkpoints" / f"{step}.safetensors").write_bytes(b"")
    assert find_demo_checkpoint(tmp_path).name == "step-012000.safetensors"


def test_directions_are_cached_per_checkpoint(renderer, tmp_path, monkeypatch):
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    messages = []
    first = renderer.compute_directions(num_samples=300, num_components=3, progress=lambda f, m: messages.append(m))
    files = list((tmp_path / "cache" / "directions").glob(f"{renderer.info.sha256[:24]}-300-3-0.npz"))
    assert len(files) == 1 and not any("cached" in m for m in messages)
    messages.clear()
    again = renderer.compute_directions(num_samples=300, num_components=3, progress=lambda f, m: messages.append(m))
    assert messages == ["directions ready (cached)"]
    assert again.keys() == first.keys() and all(np.array_equal(again[k], first[k]) for k in first)
    files[0].write_bytes(b"not an npz")                      # a damaged entry is computed again
    assert renderer.compute_directions(num_samples=300, num_components=3).keys() == first.keys()


def test_grid_headers_are_reused_while_only_the_mask_changes(renderer):
    coarse, fine = (True, True, True, False, False, False), (False, False, False, True, True, True)
    first = renderer.render(request(renderer, 1, psi=0.6, mix_mask=coarse, row_seeds=(1, 2), col_seeds=(3, 4)))
    headers = renderer._grid_headers[1]
    second = renderer.render(request(renderer, 2, psi=0.6, mix_mask=fine, row_seeds=(1, 2), col_seeds=(3, 4)))
    assert renderer._grid_headers[1] is headers                     # not synthesised again
    renderer._grid_headers = (None, None)
    fresh = renderer.render(request(renderer, 3, psi=0.6, mix_mask=fine, row_seeds=(1, 2), col_seeds=(3, 4)))
    assert np.array_equal(second.image, fresh.image) and not np.array_equal(first.image, second.image)
    renderer.render(request(renderer, 4, psi=0.7, mix_mask=fine, row_seeds=(1, 2), col_seeds=(3, 4)))
    assert renderer._grid_headers[1] is not headers                 # ψ changes the headers
