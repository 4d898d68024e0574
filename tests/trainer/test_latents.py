"""One meaning for every latent setting (trainer.latents): the maths, the state, and the promise that
the studio's engine and the CLI draw the same pixels for the same settings."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.engine.from_workspace import request_from_workspace
from ganstudio.engine.renderer import Renderer
from ganstudio.engine.workspace import Workspace
from trainer.cli import main as cli_main
from trainer import load_generator
from trainer.latents import (LatentMapper, LatentState, direction_offset, has_input_transform, input_transform,
                             layer_groups, mix_layers, parse_seeds, pca_directions, resolve_class, sample_z, seed_to_z,
                             stylegan3_transform, truncate)
from conftest import export_tiny
from conftest import NVLABS_FIXTURES as FIXTURES, needs_nvlabs_fixtures


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
    sg3 = layer_groups([16] * 6 + [32] * 10)   # a 32 px StyleGAN3: two levels, still three presets
    assert [sum(sg3[k]) for k in ("coarse", "middle", "fine")] == [6, 5, 5] and sg3["coarse"][:6] == (True,) * 6


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


@pytest.mark.parametrize("c_dim", [0, 3])
def test_the_studios_first_image_is_generates_default(tmp_path, c_dim):
    """What the studio shows on opening a model is what `generate --seeds 0` draws with no other
    flag: the same ψ and the same centre (a conditional model's class mean, else w_avg)."""
    from ganstudio.engine.controller import RenderController
    ckpt = export_tiny(tmp_path / f"c{c_dim}.safetensors", c_dim=c_dim, resolution=16, seed=5)
    controller = RenderController.inline(Workspace(), Renderer("cpu"))
    images = []
    controller.events.image.connect(images.append)
    controller.open(ckpt)
    assert controller.workspace.truncation_center == ("class" if c_dim else "global")
    cli = _cli_pixels(tmp_path, "default", "--checkpoint", str(ckpt), "--seeds", "0")
    assert np.array_equal(cli, images[-1].image)
    if c_dim:   # and the centre matters on this model
        other = _cli_pixels(tmp_path, "global", "--checkpoint", str(ckpt), "--seeds", "0", "--trunc-center", "global")
        assert not np.array_equal(other, cli)


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


# ---- the StyleGAN3 input transform ----
needs_fixtures = needs_nvlabs_fixtures


def test_transform_settings_are_validated_and_kept_in_json():
    s = LatentState(seed=1, translate_x=0.1, translate_y=-0.05, rotate_deg=370)
    assert LatentState.from_dict(json.loads(json.dumps(s.to_dict()))).transform.tolist() == s.transform.tolist()
    assert np.allclose(s.transform, stylegan3_transform(0.1, -0.05, 370)) and np.array_equal(LatentState().transform, np.eye(3))
    old = {k: v for k, v in s.to_dict().items() if k not in ("translate_x", "translate_y", "rotate_deg")}
    assert np.array_equal(LatentState.from_dict(old).transform, np.eye(3))   # states saved before StyleGAN3
    for name, bad in (("translate_x", float("inf")), ("translate_y", 10.5), ("rotate_deg", "10"), ("rotate_deg", True),
                      ("rotate_deg", -4000.0)):
        with pytest.raises(ValueError, match=name):
            LatentState(**{name: bad})


@needs_fixtures
@pytest.mark.slow
def test_generate_translate_rotate_reproduce_nvlabs_transformed_image(sg3_fixtures, tmp_path, one_thread):
    """`generate --translate 0.1,-0.05 --rotate 10` draws what NVlabs drew with that user transform (the
    fixture's img_transform, seeds 0-7 at psi 1, class = seed); the model's buffer is left as it was."""
    ref = np.load(FIXTURES / "sg3-t-cond10-32.ref.npz")
    m = ref["user_transform"]
    x, y, degrees = float(m[0, 2]), float(m[1, 2]), math.degrees(math.atan2(m[0, 1], m[0, 0]))
    assert (round(x, 6), round(y, 6), round(degrees, 6)) == (0.1, -0.05, 10.0)
    assert np.abs(stylegan3_transform(x, y, degrees) - ref["user_transform_inverse"]).max() < 1e-6
    out = tmp_path / "moved.npz"
    assert cli_main(["generate", "--checkpoint", str(sg3_fixtures / "sg3-t-cond10-32.safetensors"), "--seeds", "0-7",
                     "--psi", "1", "--translate", "0.1,-0.05", "--rotate", "10", "--out", str(out), "--threads", "1"]) in (0, None)
    with np.load(out) as saved:
        assert np.abs(saved["outputs"] - ref["img_transform"]).max() < 1e-4
    G = load_generator(sg3_fixtures / "sg3-t-cond10-32.safetensors")
    mapper = LatentMapper(G)
    states = [LatentState(seed=s, psi=1.0) for s in range(2)]
    with torch.no_grad():   # a batch that mixes transforms draws each image as it draws alone
        mixed = mapper.images([states[0].replace(translate_x=0.1, translate_y=-0.05, rotate_deg=10), states[1]])
        assert np.abs(mixed[0].numpy() - ref["img_transform"][0]).max() < 1e-4
        assert np.abs(mixed[1].numpy() - ref["img_psi1"][1]).max() < 1e-4
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))   # the buffer is back: no leak into the next


@needs_fixtures
def test_rotate_turns_counterclockwise_and_translate_moves_right_and_down(sg3_fixtures, one_thread):
    """On the rotation-equivariant StyleGAN3-R, rotate 90 is np.rot90 of the picture (counterclockwise
    as shown) and translate k / resolution rolls it k pixels; `input_transform` restores the buffer
    even when synthesis fails."""
    G = load_generator(sg3_fixtures / "sg3-r-32.safetensors")
    mapper = LatentMapper(G)
    s = LatentState(seed=5, psi=1.0)
    with torch.no_grad():
        base, turned, moved = mapper.images([s, s.replace(rotate_deg=90), s.replace(translate_x=4 / 32, translate_y=2 / 32)])
    inside = (slice(None), slice(6, -6), slice(6, -6))
    scale = float(base.abs().mean())
    assert float((turned - torch.rot90(base, 1, (1, 2)))[inside].abs().mean()) < 1e-3 * scale
    assert float((turned - torch.rot90(base, -1, (1, 2)))[inside].abs().mean()) > 0.02 * scale
    assert float((moved - torch.roll(base, (2, 4), (1, 2)))[inside].abs().mean()) < 1e-3 * scale
    with pytest.raises(ValueError), input_transform(G, s.replace(rotate_deg=30).transform):
        G.synthesis(torch.zeros(1, 3, G.w_dim))   # wrong shape: synthesis raises inside the block
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))


def test_models_without_the_transform_keep_but_ignore_it(tmp_path):
    G = load_generator(export_tiny(tmp_path / "compact.safetensors"))
    mapper = LatentMapper(G)
    s = LatentState(seed=2)
    assert not has_input_transform(G)
    with torch.no_grad():
        assert torch.equal(mapper.images([s]), mapper.images([s.replace(translate_x=0.3, rotate_deg=45)]))
