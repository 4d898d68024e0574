"""ONNX export: every kind of generator, written to a real file and run by onnxruntime, draws
what the PyTorch model draws through its own API (<= 1e-3 max abs difference) at batch 1 and 3
(the batch axis is dynamic), psi 1 and 0.5, conditional and not; and the command around it."""
import functools

import numpy as np
import pytest
import torch

from conftest import NVLABS_FIXTURES, export_tiny, needs_nvlabs_fixtures

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[test])")

from trainer.checkpoint import export_generator, load_generator  # noqa: E402
from trainer.cli import main as cli_main  # noqa: E402
from trainer.config import TranslationModelConfig  # noqa: E402
from trainer.export import OnnxSettings, check_onnx, export_onnx  # noqa: E402
from trainer.latents import (LatentMapper, input_transform, noise_layers, noise_override,  # noqa: E402
                             stylegan3_transform, truncate)
from trainer.models import build_generator  # noqa: E402
from ganstudio.engine.demo import find_demo_checkpoint  # noqa: E402

TOLERANCE = 1e-3
DEMO = str(find_demo_checkpoint())


@functools.lru_cache(maxsize=4)
def session(path: str, mtime: float):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run(path, **inputs) -> np.ndarray:
    session_ = session(str(path), path.stat().st_mtime)
    assert sorted(i.name for i in session_.get_inputs()) == sorted(inputs)
    (out,) = session_.run(None, {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})
    return out


def latents(G, n, seed=0):
    """z [n, z_dim] and one-hot c [n, c_dim] (None when unconditional), different classes per row."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    c = torch.eye(G.c_dim)[(torch.arange(n) * 7 + 2) % G.c_dim] if G.c_dim else None
    return z, c


def assert_matches(onnx_out: np.ndarray, torch_out: torch.Tensor):
    assert onnx_out.shape == tuple(torch_out.shape)
    assert np.abs(onnx_out - torch_out.numpy()).max() <= TOLERANCE


def assert_z_export_matches(G, path, batches=(1, 3), psis=(1.0, 0.5)):
    """The file at `path` (exported with --input z) against G(z, c, truncation_psi=psi)."""
    for n in batches:
        z, c = latents(G, n, seed=n)
        for psi in psis:
            with torch.no_grad():
                expected = G(z, c, truncation_psi=psi, noise_mode="const")
            inputs = {"z": z} | ({"c": c} if c is not None else {}) | ({"psi": [psi]} if G.num_ws else {})
            assert_matches(run(path, **inputs), expected)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The NVlabs fixtures, imported as ordinary checkpoints (StyleGAN2-ADA and StyleGAN3)."""
    if not (NVLABS_FIXTURES / "sg3-t-cond10-32.pkl").is_file():
        pytest.skip(f"NVlabs fixtures not found at {NVLABS_FIXTURES}")
    from trainer.importers import import_network
    folder = tmp_path_factory.mktemp("nvlabs")

    def open_fixture(name):
        out = folder / f"{name}.safetensors"
        if not out.exists():
            import_network(NVLABS_FIXTURES / f"{name}.pkl", out)
        return out
    return open_fixture


# ---- tiny models: every kind, quick ----
@pytest.mark.slow
@pytest.mark.parametrize("arch,c_dim", [("stylegan2-compact", 3), ("stylegan2", 0), ("stylegan3-t", 2)])
def test_tiny_style_models_round_trip_at_any_batch_and_psi(tmp_path, arch, c_dim):
    ckpt = export_tiny(tmp_path / "g.safetensors", arch=arch, c_dim=c_dim)
    report = export_onnx(ckpt, tmp_path / "g.onnx")
    assert report.inputs["z"] == ["batch", 16] and report.inputs["psi"] == ["psi_batch"]
    assert report.outputs["images"] == ["batch", 1, 16, 16]
    assert_z_export_matches(load_generator(ckpt), tmp_path / "g.onnx")


@pytest.mark.parametrize("arch", [pytest.param("dcgan", marks=pytest.mark.slow), "mlp"])
def test_models_without_w_take_z_and_class_only(tmp_path, arch):
    ckpt = export_tiny(tmp_path / "g.safetensors", arch=arch, c_dim=3)
    report = export_onnx(ckpt, tmp_path / "g.onnx")
    assert list(report.inputs) == ["z", "c"] and "no psi" in report.notes[0]
    assert_z_export_matches(load_generator(ckpt), tmp_path / "g.onnx", psis=(1.0,))
    with pytest.raises(ValueError, match="no W space"):
        export_onnx(ckpt, tmp_path / "ws.onnx", OnnxSettings(input="ws"))


@pytest.mark.slow
@pytest.mark.parametrize("arch,direction", [("pix2pix", None), ("cyclegan", "AtoB"), ("cyclegan", "BtoA")])
def test_image_to_image_models_translate_like_pytorch(tmp_path, arch, direction):
    cfg = TranslationModelConfig(arch=arch, in_channels=1, out_channels=3, img_resolution=16, g_width=4,
                                 resnet_blocks=1, norm="batch")
    torch.manual_seed(0)
    G = build_generator(cfg)
    with torch.no_grad():   # batch-norm statistics a trained model would have, so eval mode matters
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
    export_generator(G, tmp_path / "t.safetensors", cfg, 0, 0.0, {"name": "tiny"})
    report = export_onnx(tmp_path / "t.safetensors", tmp_path / "t.onnx", OnnxSettings(direction=direction))
    G = load_generator(tmp_path / "t.safetensors")
    channels = 1 if direction in (None, "AtoB") else 3
    assert report.inputs["image"] == ["batch", channels, 16, 16]
    for n in (1, 3):
        image = torch.rand(n, channels, 16, 16, generator=torch.Generator().manual_seed(n)) * 2 - 1
        with torch.no_grad():
            expected = G.translate(image, direction)
        assert_matches(run(tmp_path / "t.onnx", image=image), expected)


@pytest.mark.slow
def test_noise_as_inputs_and_ws_input(tmp_path):
    ckpt = export_tiny(tmp_path / "g.safetensors", arch="stylegan2", c_dim=0)
    G = load_generator(ckpt)
    report = export_onnx(ckpt, tmp_path / "g.onnx", OnnxSettings(input="ws", noise="input"))
    layers = noise_layers(G)
    assert list(report.inputs) == ["ws"] + ["noise_" + name.replace(".", "_") for name in layers]
    ws = torch.randn(3, G.num_ws, G.w_dim)
    maps = {name: torch.randn(3, 1, *layer.noise_const.shape) for name, layer in layers.items()}
    with torch.no_grad(), noise_override(G, maps):
        expected = G.synthesis(ws, noise_mode="const")
    feeds = {"noise_" + name.replace(".", "_"): m for name, m in maps.items()}
    assert_matches(run(tmp_path / "g.onnx", ws=ws, **feeds), expected)
    # one map for the whole batch broadcasts, and differs from the stored one
    one = {k: v[:1] for k, v in feeds.items()}
    with torch.no_grad():
        stored = G.synthesis(ws, noise_mode="const")
    assert np.abs(run(tmp_path / "g.onnx", ws=ws, **one) - stored.numpy()).max() > 1e-2


def test_settings_a_model_cannot_honour_are_refused(tmp_path):
    ckpt = export_tiny(tmp_path / "g.safetensors", arch="stylegan2", c_dim=0)
    for settings, message in [(OnnxSettings(center="class"), "conditional"),
                              (OnnxSettings(cutoff=99), "cutoff"),
                              (OnnxSettings(transform_input=True), "StyleGAN3"),
                              (OnnxSettings(direction="BtoA"), "image-to-image")]:
        with pytest.raises(ValueError, match=message):
            export_onnx(ckpt, tmp_path / "g.onnx", settings)
    assert not (tmp_path / "g.onnx").exists()


def test_cli_exports_checks_and_refuses_to_overwrite(tmp_path, capsys):
    ckpt = export_tiny(tmp_path / "g.safetensors", arch="stylegan2", c_dim=3)
    out = tmp_path / "g.onnx"
    assert cli_main(["export", str(ckpt), "--onnx", str(out), "--check", "--cutoff", "2", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "input  c                [batch, 3]" in text
    difference = float(text.rsplit("max abs difference", 1)[1])
    assert difference <= TOLERANCE
    assert cli_main(["export", str(ckpt), "--onnx", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert cli_main(["export", str(ckpt), "--onnx", str(out), "--force", "--direction", "AtoB"]) == 2


# ---- the demo and NVlabs' own networks ----
@pytest.mark.slow
def test_demo_round_trips(tmp_path):
    export_onnx(DEMO, tmp_path / "demo.onnx")
    assert_z_export_matches(load_generator(DEMO), tmp_path / "demo.onnx")


@pytest.mark.slow
@needs_nvlabs_fixtures
@pytest.mark.parametrize("name", ["sg2ada-cond10-32", "sg2ada-uncond-64", "sg3-t-cond10-32", "sg3-r-32"])
def test_nvlabs_networks_round_trip_from_z(imported, tmp_path, name):
    ckpt = imported(name)
    export_onnx(ckpt, tmp_path / "g.onnx")
    assert_z_export_matches(load_generator(ckpt), tmp_path / "g.onnx")


@pytest.mark.slow
@needs_nvlabs_fixtures
@pytest.mark.parametrize("name", ["sg2ada-cond10-32", "sg3-t-cond10-32"])
def test_class_centred_truncation_matches_the_studio(imported, tmp_path, name):
    ckpt = imported(name)
    export_onnx(ckpt, tmp_path / "g.onnx", OnnxSettings(center="class", cutoff=4))
    G = load_generator(ckpt)
    z, c = latents(G, 3)
    centers = LatentMapper(G).class_means()[c.argmax(dim=1)]
    with torch.no_grad():
        expected = G.synthesis(truncate(G.mapping(z, c), centers, 0.5, 4), noise_mode="const")
    assert_matches(run(tmp_path / "g.onnx", z=z, c=c, psi=[0.5]), expected)


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_stylegan3_transform_as_an_input(imported, tmp_path):
    ckpt = imported("sg3-r-32")
    export_onnx(ckpt, tmp_path / "g.onnx", OnnxSettings(input="ws", transform_input=True))
    G = load_generator(ckpt)
    z, _ = latents(G, 3)
    with torch.no_grad():
        ws = G.mapping(z, None)
    for matrix in (np.eye(3), stylegan3_transform(0.1, -0.05, 30.0)):
        with torch.no_grad(), input_transform(G, matrix):
            expected = G.synthesis(ws)
        assert_matches(run(tmp_path / "g.onnx", ws=ws, transform=matrix), expected)
    assert check_onnx(tmp_path / "g.onnx", G, OnnxSettings(input="ws", transform_input=True)) <= TOLERANCE
