"""StyleGAN3 (-T and -R): importing NVlabs' pickles reproduces what NVlabs' own code computed
(ws, images, an image under a user transform, D logits); a freshly built model designs the same
filters and schedule NVlabs stores, trains (gradients, magnitude EMAs) and is translation
equivariant; code planted in a pickle's embedded source never runs. Fixtures live outside the
project, in ../shared/fixtures/nvlabs (see its README.txt); those tests skip when it is absent."""
import math
import pickle
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from trainer import load_generator
from trainer.checkpoint import load_discriminator, read_checkpoint
from trainer.cli import main as cli_main
from trainer.importers import import_network
from trainer.importers.nvlabs_pkl import convert_nvlabs_pickle, convert_snapshot
from trainer.importers.stylegan3_pkl import check_schedule, generator_config
from trainer.importers.unpickler import NetworkRecord, PlainDict, read_network_pickle
from trainer.latents import stylegan3_transform
from trainer.models import ARCHS
from trainer.models.stylegan3 import StyleGAN3Generator, StyleGAN3GeneratorConfig
from conftest import NVLABS_FIXTURES as FIXTURES, max_diff, nvlabs_reference as reference

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

NAMES = ["sg3-t-cond10-32", "sg3-r-32", "sg3-t-64"]
TOLERANCE = 1e-4
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "sg3-t-64.pkl").is_file(),
                                    reason=f"NVlabs StyleGAN3 fixtures not found at {FIXTURES} (../shared is absent)")


def user_settings(matrix: np.ndarray) -> tuple[float, float, float]:
    """NVlabs' user transform [[cos a, sin a, x], [-sin a, cos a, y], [0, 0, 1]] -> (x, y, degrees)."""
    return float(matrix[0, 2]), float(matrix[1, 2]), math.degrees(math.atan2(matrix[0, 1], matrix[0, 0]))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each fixture imported once, with its discriminator, through the library function."""
    if not (FIXTURES / "sg3-t-64.pkl").is_file():
        pytest.skip(f"NVlabs StyleGAN3 fixtures not found at {FIXTURES}")
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("sg3")
    out = {}
    for name in NAMES:
        out[name] = folder / f"{name}.safetensors"
        summary = import_network(FIXTURES / f"{name}.pkl", out[name], include_discriminator=True)
        assert summary["arch"] == str(reference(name)["config"]) and summary["num_ws"] == 16
    return out


@needs_fixtures
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_imported_stylegan3_reproduces_nvlabs(imported, name):
    ref = reference(name)
    G = load_generator(imported[name])
    assert type(G).__name__ == "StyleGAN3Generator" and G.checkpoint_info["config"]["arch"] == str(ref["config"])
    assert (G.z_dim, G.c_dim, G.num_ws, G.w_dim) == (ref["z"].shape[1], ref["c"].shape[1], *ref["ws_psi1"].shape[1:])
    assert G.img_resolution == ref["img_psi1"].shape[-1] and tuple(G.w_avg.shape) == (G.w_dim,)
    z, ws = torch.from_numpy(ref["z"]), torch.from_numpy(ref["ws_psi1"])
    c = torch.from_numpy(ref["c"]) if G.c_dim else None
    transform = stylegan3_transform(*user_settings(ref["user_transform"]))
    assert np.abs(transform - ref["user_transform_inverse"]).max() < 1e-6
    with torch.no_grad():
        diffs = {
            "ws_psi1": max_diff(G.mapping(z, c), ref["ws_psi1"]),
            "ws_psi07": max_diff(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=None), ref["ws_psi07"]),
            "img_psi1": max_diff(G.synthesis(ws, noise_mode="const"), ref["img_psi1"]),
            "img_psi07": max_diff(G.synthesis(torch.from_numpy(ref["ws_psi07"])), ref["img_psi07"]),
            "img_call": max_diff(G(z, c, truncation_psi=0.5, noise_mode="const"), ref["img_call"]),
        }
        G.synthesis.input.transform.copy_(torch.from_numpy(transform))
        diffs["img_transform"] = max_diff(G.synthesis(ws), ref["img_transform"])
        diffs["d_logits"] = max_diff(load_discriminator(imported[name])(torch.from_numpy(ref["img_psi1"]), c),
                                     ref["d_logits"])   # one batch: minibatch-std couples the samples
    print(name, {k: f"{v:.2e}" for k, v in diffs.items()})
    assert max(diffs.values()) <= TOLERANCE, diffs
    moved = np.abs(ref["img_transform"] - ref["img_psi1"]).max()
    assert moved > 0.1 * np.abs(ref["img_psi1"]).max()            # the transform really moves the image


@needs_fixtures
@pytest.mark.slow
def test_cli_import_and_metadata(tmp_path, capsys):
    out = tmp_path / "r.safetensors"
    assert cli_main(["import", str(FIXTURES / "sg3-r-32.pkl"), "--out", str(out), "--with-d"]) == 0
    assert "wrote" in capsys.readouterr().out
    tensors, meta = read_checkpoint(out)
    assert meta["arch"] == "stylegan3-r" and meta["source"] == "nvlabs-pkl" and meta["kept"] == "G_ema,D"
    assert "synthesis.L0_36_128.down_filter" in tensors and tensors["synthesis.L0_36_128.down_filter"].ndim == 2
    ref = reference("sg3-r-32")
    with torch.no_grad():
        img = load_generator(out).synthesis(torch.from_numpy(ref["ws_psi1"]))
    assert max_diff(img, ref["img_psi1"]) <= TOLERANCE


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_model_designs_the_filters_nvlabs_stores(name):
    """Built from the fixture's own settings, every buffer that is designed rather than learned or
    drawn at random (filters, transform) equals the pickle's, and so does every layer attribute
    the pickle stores (sizes, rates, cutoffs, half-widths, taps, paddings)."""
    record = read_network_pickle(FIXTURES / f"{name}.pkl")["G_ema"]
    stored = {k: v for k, v in convert_snapshot({"G_ema": record}, f"{name}.pkl")[0].state_dict().items()}
    torch.manual_seed(0)
    fresh = StyleGAN3Generator(generator_config(record))
    check_schedule(record, fresh)
    designed = {k: v for k, v in fresh.state_dict().items() if k.endswith(("_filter", ".transform"))}
    assert len(designed) == 2 * 14 + 1 and set(designed) <= set(stored)
    for key, value in designed.items():
        assert value.shape == stored[key].shape and torch.equal(value, stored[key]), key
    radial = [k for k, v in designed.items() if v.ndim == 2 and k != "synthesis.input.transform"]
    assert len(radial) == (12 if name == "sg3-r-32" else 0)         # -R: every layer before the critical ones
    bandwidth = fresh.synthesis.input.bandwidth
    assert fresh.synthesis.input.freqs.norm(dim=1).max() <= bandwidth   # inside the input's band, as stored
    assert stored["synthesis.input.freqs"].norm(dim=1).max() <= bandwidth


@pytest.mark.parametrize("arch", ["stylegan3-t", "stylegan3-r"])
def test_tiny_fresh_model_trains_on_cpu(arch):
    torch.manual_seed(0)
    cfg = StyleGAN3GeneratorConfig.for_arch(arch, z_dim=8, w_dim=8, c_dim=3, img_resolution=16, channel_base=64,
                                            channel_max=8, num_layers=4, num_critical=1, conv_clamp=256.0)
    G = ARCHS[arch].make_generator(cfg)
    assert ARCHS[arch].trainable and G.num_ws == 6 and G.synthesis.layers[0].conv_kernel == cfg.conv_kernel
    z, c = torch.randn(2, 8), torch.tensor([0, 2])
    emas = torch.stack([layer.magnitude_ema for layer in G.synthesis.layers])
    G.eval()
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.7, noise_mode="random")
    assert tuple(img.shape) == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert torch.equal(emas, torch.stack([layer.magnitude_ema for layer in G.synthesis.layers]))  # eval: unchanged
    G.train()
    ws = G.mapping(z, c).detach().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0
    for name, p in G.named_parameters():
        if not name.startswith("mapping."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert G.synthesis.input.affine.weight.grad.abs().sum() > 0         # the learned input transform trains
    moved = torch.stack([layer.magnitude_ema for layer in G.synthesis.layers])
    assert (moved != emas).all()                                          # training mode: every EMA moved
    with pytest.raises(ValueError, match="ws has shape"):
        G.synthesis(ws[:, :3])


@needs_fixtures
@pytest.mark.slow
def test_translation_moves_the_image_right_and_down():
    """stylegan3_transform's x and y are image widths: 4 / 64 moves a 64 px StyleGAN3-T image by 4
    pixels to the right (or down), up to the alias-free model's small equivariance error."""
    G = convert_nvlabs_pickle(FIXTURES / "sg3-t-64.pkl")[0]
    ws = torch.from_numpy(reference("sg3-t-64")["ws_psi1"][:2])
    with torch.no_grad():
        base = G.synthesis(ws)
        for (tx, ty), (dx, dy) in (((4 / 64, 0), (4, 0)), ((0, 4 / 64), (0, 4))):
            G.synthesis.input.transform.copy_(torch.from_numpy(stylegan3_transform(tx, ty, 0)))
            moved = G.synthesis(ws)[:, :, 8:-8, 8:-8]
            rolled = {shift: torch.roll(base, shift, dims=(3, 2))[:, :, 8:-8, 8:-8] for shift in ((dx, dy), (-dx, -dy))}
            error = {shift: float((moved - img).abs().mean() / base.abs().mean()) for shift, img in rolled.items()}
            assert error[(dx, dy)] < 1e-3 < 0.05 < error[(-dx, -dy)], error
    assert np.allclose(stylegan3_transform(0, 0, 0), np.eye(3))


# ---- a pickle whose embedded source carries code ----

def planted_pickle(records: dict, code: str) -> bytes:
    """The snapshot written as NVlabs writes one (each network a torch_utils.persistence
    reconstruction record holding its module source), with `code` prepended to every source."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):   # only named here, so pickle can write the global
        raise AssertionError

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__, EasyDict.__module__ = persistence.__name__, util.__name__
    _reconstruct_persistent_obj.__qualname__, EasyDict.__qualname__ = "_reconstruct_persistent_obj", "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _reconstruct_persistent_obj, EasyDict

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return _reconstruct_persistent_obj, (self.meta,)

    def rebuild(value):
        if isinstance(value, NetworkRecord):
            return Persistent({"type": "class", "version": 6, "module_src": code + "\n" + value.source,
                               "class_name": value.class_name, "state": rebuild(value.state)})
        if isinstance(value, dict):
            items = {k: rebuild(v) for k, v in value.items()}
            return EasyDict(items) if isinstance(value, PlainDict) else type(value)(items)
        if isinstance(value, (list, tuple)):
            return type(value)(rebuild(v) for v in value)
        return value

    modules = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
               "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        return pickle.dumps({k: rebuild(v) for k, v in records.items()}, protocol=4)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


NVLABS_STYLE_LOADER = """
import pickle, sys, types
persistence = types.ModuleType("torch_utils.persistence")
def _reconstruct_persistent_obj(meta):   # what NVlabs' loader does with the embedded source
    try:
        exec(compile(meta["module_src"], "<embedded>", "exec"), {})
    except ImportError:                  # NVlabs' own imports (torch_utils.misc ...) are absent here
        pass
    return meta["class_name"]
persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
util = types.ModuleType("dnnlib.util")
util.EasyDict = dict
sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                    "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
with open(sys.argv[1], "rb") as f:
    pickle.load(f)
"""


@needs_fixtures
@pytest.mark.slow
def test_code_planted_in_the_embedded_source_never_runs(tmp_path):
    snapshot = read_network_pickle(FIXTURES / "sg3-t-cond10-32.pkl")
    target, control = tmp_path / "pwned.txt", tmp_path / "control.txt"
    planted = "import os; os.system('echo ran > {}')"
    (tmp_path / "control.pkl").write_bytes(planted_pickle(snapshot, planted.format(control)))
    subprocess.run([sys.executable, "-c", NVLABS_STYLE_LOADER, str(tmp_path / "control.pkl")], check=True, timeout=120)
    assert control.read_text().strip() == "ran"      # the payload is real: a loader that runs the source runs it
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(planted_pickle(snapshot, planted.format(target)))
    out = tmp_path / "evil.safetensors"
    summary = import_network(evil, out, include_discriminator=True)
    assert not target.exists() and summary["arch"] == "stylegan3-t" and summary["c_dim"] == 10
    assert read_network_pickle(evil)["G_ema"].source.startswith(planted.format(target))   # kept as text only
    ref = reference("sg3-t-cond10-32")
    with torch.no_grad():
        img = load_generator(out).synthesis(torch.from_numpy(ref["ws_psi1"]))
    assert max_diff(img, ref["img_psi1"]) <= TOLERANCE and not target.exists()


def _synthesis_child(record: NetworkRecord, name: str) -> NetworkRecord:
    return record.state["_modules"]["synthesis"].state["_modules"][name]


@needs_fixtures
@pytest.mark.parametrize("name, edit, message", [
    ("sg3-t-64", lambda g: _synthesis_child(g, "L3_36_64").state.update(padding=[0, 0, 0, 0]),
     "layer L3_36_64 stores padding = [0, 0, 0, 0], but its settings give [9, 8, 9, 8]"),
    ("sg3-t-64", lambda g: g.state["_init_kwargs"].update(first_cutoff=3),
     "the synthesis network stores layer_names[6] = 'L6_52_64', but its settings give 'L6_52_52'"),
    ("sg3-r-32", lambda g: g.state["_init_kwargs"].pop("use_radial_filters"), "stores down_radial = True"),
    ("sg3-t-64", lambda g: g.state["_init_kwargs"].update(some_new_option=1), "cannot reproduce: some_new_option"),
])
def test_stylegan3_files_built_another_way_are_refused(name, edit, message):
    """Settings, stored layer attributes and tensors are checked against each other."""
    from trainer.importers import NetworkImportError
    snapshot = read_network_pickle(FIXTURES / f"{name}.pkl")
    convert_snapshot(snapshot, "ok.pkl")                           # as stored: accepted
    edit(snapshot["G_ema"])
    with pytest.raises(NetworkImportError, match=re.escape(message)):
        convert_snapshot(snapshot, "odd.pkl")
