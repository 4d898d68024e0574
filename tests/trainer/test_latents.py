"""One meaning for every latent setting (trainer.latents): the maths, the state, and the promise that
the studio's engine and the CLI draw the same pixels for the same settings."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.engine.renderer import Renderer, request_from_workspace
from ganstudio.engine.workspace import Workspace
from trainer.cli import main as cli_main
from trainer.latents import (LatentMapper, LatentState, direction_offset, layer_groups, mix_layers, parse_seeds,
                             pca_directions, resolve_class, sample_z, seed_to_z, truncate)
from conftest import export_tiny


def test_seed_to_z_follows_nvlabs_convention():
    assert np.array_equal(seed_to_z(42, 8), np.random.RandomState(42).randn(8).astype(np.float32))
    assert not np.array_equal(seed_to_z(1, 8), seed_to_z(2, 8))


def test_truncated_normal_resamples_into_the_threshold():
    z = seed_to_z(3, 4096, 0.5)
    assert np.abs(z).max() <= 0.5 and np.array_equal(z, seed_to_z(3, 4096, 0.5))
    assert np.array_equal(seed_to_z(3, 64, 0.0), seed_to_z(3, 64))
    # inside the threshold the first draws are kept: components that were already small stay
    free = seed_to_z(3, 4096)
    keep = np.abs(free) <= 0.5
    assert np.array_equal(z[keep], free[keep])
    assert np.std(z) < 0.35  # a normal truncated at 0.5 has std ~0.28


def test_truncate_pulls_chosen_layers_toward_center():
    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(2, 6, 4, generator=gen)
    center = torch.randn(4, generator=gen)
    assert torch.equal(truncate(ws, center, 1.0, None), ws)
    out = truncate(ws, center, 0.0, 3)
    assert torch.allclose(out[:, :3], center.expand(2, 3, 4)) and torch.equal(out[:, 3:], ws[:, 3:])
    half = truncate(ws, center, 0.5, None)
    assert torch.allclose(half, center + 0.5 * (ws - center), atol=1e-6)   # lerp rounds differently near 0
    per_sample = truncate(ws, torch.zeros(2, 4), -1.0, None)
    assert torch.allclose(per_sample, -ws)


def test_mix_layers_and_presets():
    a, b = torch.zeros(1, 4, 2), torch.ones(1, 4, 2)
    mixed = mix_layers(a, b, (False, True, True, False))
    assert mixed[0, :, 0].tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="3 layers"):
        mix_layers(a, b, (True, False, True))
    groups = layer_groups([4, 8, 8, 16, 16, 32, 32, 32])
    assert groups["coarse"] == (True, True, True, False, False, False, False, False)
    assert groups["middle"] == (False, False, False, True, True, False, False, False)
    assert groups["fine"] == (False,) * 5 + (True,) * 3
    big = layer_groups([4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 256])
    assert sum(big["coarse"]) + sum(big["middle"]) + sum(big["fine"]) == 14


def test_pca_finds_the_long_axis():
    rng = np.random.RandomState(0)
    axis = np.array([3.0, 4.0, 0.0]) / 5
    w = rng.randn(4000, 1) * 5 * axis + rng.randn(4000, 3) * 0.3 + 7
    vectors, sigmas = pca_directions(w, 2)
    assert abs(abs(vectors[0] @ axis) - 1) < 1e-3
    assert vectors[0][np.abs(vectors[0]).argmax()] > 0
    assert 4.7 < sigmas[0] < 5.3 and sigmas[1] < 0.4
    offset = direction_offset({"PC1": vectors[0] * sigmas[0], "PC2": vectors[1]}, {"PC1": 2.0, "PC2": 0.0})
    assert np.allclose(offset, 2 * vectors[0] * sigmas[0])
    assert direction_offset({"PC1": vectors[0]}, {"PC1": 0.0}) is None


def test_parse_seeds_ranges_limits_and_messages():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds(" 7 ") == [7]
    for bad, words in [("x", "cannot read"), ("5-2", "cannot read"), ("-1", "out of range"), ("", "no seeds"),
                       ("4294967296", "out of range"), ("0-4294967295", "too many")]:
        with pytest.raises(ValueError, match=words):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="at most 8"):
        parse_seeds("0-8", limit=8)


def test_sample_z_rows_and_class_rule():
    many = sample_z(5, 6, count=100)
    assert many.shape == (100, 6) and np.array_equal(many[0], seed_to_z(5, 6))
    assert resolve_class(13, None, 10) == 3 and resolve_class(13, 4, 10) == 4 and resolve_class(13, 4, 0) is None
    with pytest.raises(ValueError, match="out of range"):
        resolve_class(1, 10, 10)


def test_mapping_truncation_is_the_one_truncate(tmp_path):
    from trainer import load_generator
    G = load_generator(export_tiny(tmp_path / "g.safetensors"))
    z, c = torch.from_numpy(sample_z(3, 16, count=4)), torch.tensor([0, 1, 2, 0])
    for psi, cutoff in [(0.5, None), (0.5, 2), (-0.3, 4), (1.0, None)]:
        assert torch.equal(G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff),
                           truncate(G.mapping(z, c), G.w_avg, psi, cutoff))


def test_explicit_w_plus_is_final(tmp_path):
    from trainer import load_generator
    G = load_generator(export_tiny(tmp_path / "g.safetensors"))
    mapper = LatentMapper(G)
    target = torch.randn(G.num_ws, G.w_dim).numpy()
    state = LatentState.explicit(target)
    assert state.effective_psi == 1.0
    assert torch.equal(mapper.ws([state])[0], torch.from_numpy(target))   # not pulled toward any centre
    assert LatentState(seed=3).effective_psi == 0.7                      # a seed gets the default ψ
    edited = state.replace(psi=0.5)                                      # the user asks: it applies
    assert torch.allclose(mapper.ws([edited])[0], truncate(torch.from_numpy(target)[None], G.w_avg, 0.5, None)[0])
    with pytest.raises(ValueError, match="shape"):
        mapper.ws([LatentState.explicit(np.zeros((2, 2), np.float32))])


def test_latent_state_json_round_trip_and_refusals():
    state = LatentState(seed=9, class_index=2, psi=0.5, cutoff=3, truncation_center="class", noise_mode="none",
                        mix_seed=4, mix_mask=(True, False), ws=np.ones((2, 3), np.float32),
                        w_offset=np.zeros(3, np.float32), offset_layers=(1, None))
    back = LatentState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back.to_dict() == state.to_dict()
    for bad, words in [({"seed": -1}, "seed"), ({"noise_mode": "loud"}, "noise mode"), ({"psi": float("nan")}, "psi"),
                       ({"ws": [1, 2]}, "W\\+"), ({"extra": 1}, "unknown"), ({"truncation_center": "x"}, "centre")]:
        with pytest.raises(ValueError, match=words):
            LatentState.from_dict(bad)


def _cli_pixels(tmp_path, name, *args) -> np.ndarray:
    out = tmp_path / f"{name}.png"
    assert cli_main(["generate", *args, "--out", str(out)]) == 0
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.parametrize("arch,c_dim", [("stylegan2", 0), ("stylegan2", 3), ("dcgan", 0)])
def test_studio_engine_and_cli_draw_the_same_bytes(tmp_path, arch, c_dim):
    """The same settings through the studio's renderer (a workspace) and through
    `ganstudio-train generate` (flags, and the saved workspace file) give identical pixels."""
    ckpt = export_tiny(tmp_path / f"{arch}{c_dim}.safetensors", arch=arch, c_dim=c_dim, resolution=16, seed=c_dim)
    renderer = Renderer("cpu")
    info = renderer.load(ckpt)
    has_w = info.has_w
    ws = Workspace(checkpoint=str(ckpt), seed=11, class_index=2 if c_dim else 0, psi=0.5 if has_w else 0.7,
                   cutoff=3 if has_w else None, truncation_center="class" if c_dim else "global",
                   z_threshold=0.0 if has_w else 0.8)
    studio = renderer.render(request_from_workspace(ws, info, 1))
    assert not studio.error, studio.error
    flags = ["--checkpoint", str(ckpt), "--seeds", "11"]
    flags += ["--psi", "0.5", "--trunc-cutoff", "3"] if has_w else ["--z-threshold", "0.8"]
    if c_dim:
        flags += ["--class", "2", "--trunc-center", "class"]
    cli = _cli_pixels(tmp_path, "flags", *flags)
    assert cli.shape == studio.image.shape and np.array_equal(cli, studio.image)
    ws.save(tmp_path / "view.json")
    headless = _cli_pixels(tmp_path, "workspace", "--workspace", str(tmp_path / "view.json"))
    assert np.array_equal(headless, studio.image)
    # and the settings matter: another ψ (or threshold) draws other pixels
    other = ["--psi", "1.0"] if has_w else ["--z-threshold", "0.2"]
    assert not np.array_equal(_cli_pixels(tmp_path, "other", *flags, *other), studio.image)


def test_workspace_with_w_plus_and_directions_renders_headless(tmp_path):
    ckpt = export_tiny(tmp_path / "g.safetensors", c_dim=3)
    renderer = Renderer("cpu")
    info = renderer.load(ckpt)
    rng = np.random.RandomState(0)
    ws = Workspace(checkpoint="g.safetensors", seed=4, class_index=1, psi=1.0, noise_mode="none",
                   base_ws=rng.randn(info.num_ws, info.w_dim).astype(np.float32),
                   directions={"PC1": rng.randn(info.w_dim).astype(np.float32)}, direction_offsets={"PC1": 1.5},
                   direction_layers=(1, 4), mix_seed=3, mix_layers=(False,) * 4 + (True,) * 2)
    studio = renderer.render(request_from_workspace(ws, info, 1))
    ws.save(tmp_path / "view.json")   # a relative checkpoint path: relative to the workspace file
    assert np.array_equal(_cli_pixels(tmp_path, "ws", "--workspace", str(tmp_path / "view.json")), studio.image)


def test_generate_refuses_bad_settings_with_messages(tmp_path, capsys):
    ckpt = export_tiny(tmp_path / "g.safetensors", c_dim=3)
    assert cli_main(["generate", "--checkpoint", str(ckpt), "--class", "7", "--out", str(tmp_path / "x.png")]) == 2
    assert "class 7 is out of range" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{}")
    assert cli_main(["generate", "--workspace", str(tmp_path / "junk.json"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a GAN Studio workspace" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
