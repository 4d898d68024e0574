"""Importing NVlabs network pickles: exactness against outputs NVlabs' own code computed, and
safety against files that try to run code. Fixtures live outside the project, in
../shared/fixtures/nvlabs (see its README.txt); the tests skip when it is absent."""
import hashlib
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import load_generator
from trainer.checkpoint import CheckpointError, load_discriminator, read_checkpoint
from trainer.cli import main as cli_main
from trainer.importers import NetworkImportError, import_network
from trainer.importers.nvlabs_pkl import NetworkRecord, read_network_pickle
from conftest import max_diff, nvlabs_reference as reference

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "nvlabs"
NAMES = ["sg2ada-uncond-32", "sg2ada-cond10-32", "sg2ada-uncond-64"]
TOLERANCE = 1e-4
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "sg2ada-uncond-32.pkl").is_file(),
                                    reason=f"NVlabs fixtures not found at {FIXTURES} (../shared is absent)")


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.pkl"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each fixture imported once, with its discriminator, through the public API."""
    if not (FIXTURES / "sg2ada-uncond-32.pkl").is_file():
        pytest.skip(f"NVlabs fixtures not found at {FIXTURES}")
    folder = tmp_path_factory.mktemp("imported")
    out = {}
    for name in NAMES:
        target = folder / f"{name}.safetensors"
        import_network(fixture(name), target, include_discriminator=True)
        out[name] = target
    return out


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_imported_generator_reproduces_nvlabs(imported, name):
    ref = reference(name)
    G = load_generator(imported[name])
    assert type(G).__name__ == "NVlabsGenerator" and G.checkpoint_info["config"]["arch"] == "stylegan2"
    z = torch.from_numpy(ref["z"])
    c = torch.from_numpy(ref["c"]) if G.c_dim else None
    assert (G.z_dim, G.c_dim, G.num_ws, G.w_dim) == (ref["z"].shape[1], ref["c"].shape[1], *ref["ws_psi1"].shape[1:])
    assert tuple(G.w_avg.shape) == (G.w_dim,) and G.img_resolution == ref["img_psi1"].shape[-1]
    with torch.no_grad():
        diffs = {
            "ws_psi1": max_diff(G.mapping(z, c), ref["ws_psi1"]),
            "ws_psi07": max_diff(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=None), ref["ws_psi07"]),
            "img_psi1": max_diff(G.synthesis(torch.from_numpy(ref["ws_psi1"]), noise_mode="const"), ref["img_psi1"]),
            "img_psi07": max_diff(G.synthesis(torch.from_numpy(ref["ws_psi07"])), ref["img_psi07"]),
            "img_call": max_diff(G(z, c, truncation_psi=0.5, noise_mode="const"), ref["img_call"]),
            # one image at a time runs the other formulation of the modulated convolution
            "img_psi1_single": max_diff(torch.cat([G.synthesis(torch.from_numpy(ref["ws_psi1"][i:i + 1]))
                                                   for i in range(8)]), ref["img_psi1"]),
        }
    print(name, {k: f"{v:.2e}" for k, v in diffs.items()})
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert np.abs(ref["img_psi1"]).max() > 1        # random weights: a real range, not near-zero images


@needs_fixtures
@pytest.mark.parametrize("execution, polyphase_from", [("nvlabs", 64), ("shared", 64), ("fastest", 4), ("shared", 4)])
def test_every_execution_path_reproduces_nvlabs(imported, monkeypatch, execution, polyphase_from):
    """The modulated convolution runs fused or shared, upsampling as a transposed convolution or
    by output phases (used from 64 px inputs on CPU, so forced here on the 64 px fixture)."""
    import trainer.models.nvlabs_ops as nv   # where the execution switches live
    monkeypatch.setattr(nv, "EXECUTION", execution)
    monkeypatch.setattr(nv, "POLYPHASE_FROM_RESOLUTION", polyphase_from)
    ref = reference("sg2ada-uncond-64")
    G = load_generator(imported["sg2ada-uncond-64"])
    ws = torch.from_numpy(ref["ws_psi1"])
    with torch.no_grad():
        for batch in (1, 3, 8):
            img = torch.cat([G.synthesis(part) for part in ws.split(batch)])
            assert max_diff(img, ref["img_psi1"]) <= TOLERANCE, batch


@needs_fixtures
def test_gradients_flow_to_ws_and_weights(imported):
    """Inversion optimises ws and fine-tuning (PTI) the weights: both get finite gradients, and the
    cached weight terms are not used where the weights need gradients."""
    G = load_generator(imported["sg2ada-uncond-32"])
    ws = G.mapping(torch.from_numpy(reference("sg2ada-uncond-32")["z"][:2]), None).detach().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0
    G.requires_grad_(True)
    weight = G.synthesis.b32.conv0.weight
    G.synthesis(ws.detach()).square().mean().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_imported_discriminator_reproduces_nvlabs(imported, name):
    ref = reference(name)
    D = load_discriminator(imported[name])
    c = torch.from_numpy(ref["c"]) if D.c_dim else None
    with torch.no_grad():
        logits = D(torch.from_numpy(ref["img_psi1"]), c)    # one batch: minibatch-std couples the samples
    assert max_diff(logits, ref["d_logits"]) <= TOLERANCE


@needs_fixtures
def test_labels_as_integers_or_one_hot(imported):
    ref = reference("sg2ada-cond10-32")
    G = load_generator(imported["sg2ada-cond10-32"])
    z = torch.from_numpy(ref["z"])
    labels = torch.from_numpy(ref["c"].argmax(axis=1))
    with torch.no_grad():
        assert max_diff(G(z, labels, truncation_psi=0.5), ref["img_call"]) <= TOLERANCE
        with pytest.raises(ValueError, match="conditional"):
            G.mapping(z, None)
        ws = G.mapping(z, labels)
        cut = G.mapping(z, labels, truncation_psi=0.0, truncation_cutoff=3)
    assert torch.allclose(cut[:, :3], G.w_avg.expand(8, 3, -1)) and torch.equal(cut[:, 3:], ws[:, 3:])


@needs_fixtures
def test_noise_modes_and_metadata(imported):
    path = imported["sg2ada-uncond-32"]
    G = load_generator(path)
    ws = G.mapping(torch.from_numpy(reference("sg2ada-uncond-32")["z"][:2]), None)
    with torch.no_grad():
        const = G.synthesis(ws, noise_mode="const")
        assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
        assert not torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
        assert not torch.equal(G.synthesis(ws, noise_mode="none"), const)
        with pytest.raises(ValueError, match="ws has shape"):
            G.synthesis(ws[:, :3])
    _, meta = read_checkpoint(path)
    assert meta["source"] == "nvlabs-pkl" and meta["source_file"] == "sg2ada-uncond-32.pkl"
    assert meta["source_sha256"] == hashlib.sha256(fixture("sg2ada-uncond-32").read_bytes()).hexdigest()
    assert meta["kept"] == "G_ema,D" and json.loads(meta["config"])["channel_base"] == 512


@needs_fixtures
def test_generator_only_import_and_cli(tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    assert cli_main(["import", str(fixture("sg2ada-uncond-64")), "--out", str(out), "--threads", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    tensors, meta = read_checkpoint(out)
    assert meta["kept"] == "G_ema" and not any(k.startswith("discriminator.") for k in tensors)
    with pytest.raises(CheckpointError, match="holds no discriminator"):
        load_discriminator(out)
    assert cli_main(["import", str(fixture("sg2ada-uncond-64")), "--out", str(out)]) == 1   # exists
    assert "--force" in capsys.readouterr().err


# ---- files that try to run code, and files that are not networks ----

class WritesAFile:
    """Unpickling this with the standard library runs builtins.exec, which writes `target`."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({str(self.target)!r}, 'w').write('ran')",))


def stdlib_unpickle_in_subprocess(path: Path) -> None:
    code = "import pickle, sys\nwith open(sys.argv[1], 'rb') as f:\n    pickle.Unpickler(f).load()\n"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


def test_a_reduce_that_writes_a_file_is_refused(tmp_path):
    control, target = tmp_path / "control.txt", tmp_path / "pwned.txt"
    (tmp_path / "control.pkl").write_bytes(pickle.dumps({"G_ema": WritesAFile(control)}))
    stdlib_unpickle_in_subprocess(tmp_path / "control.pkl")
    assert control.read_text() == "ran"       # the payload is real: the standard unpickler runs it
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": WritesAFile(target), "D": None}))
    out = tmp_path / "out.safetensors"
    before = files_in(tmp_path)
    with pytest.raises(NetworkImportError, match=r"evil\.pkl asks to load the Python object builtins\.exec"):
        import_network(evil, out)
    assert not target.exists() and not out.exists() and files_in(tmp_path) == before


@needs_fixtures
def test_edited_embedded_source_is_never_run(tmp_path):
    """NVlabs' loader exec()s the module source stored in the pickle. Put code that writes a file at
    the top of that source (same length, so the pickle's frames stay valid): the import still
    works, the source reaches the importer only as text, and the file never appears."""
    data = fixture("sg2ada-uncond-32").read_bytes()
    header = b"# Copyright (c) 2021, NVIDIA CORPORATION."
    start = data.index(header)
    end = data.index(b"\n\nimport numpy as np", start)
    target, control = tmp_path / "pwned.txt", tmp_path / "control.txt"
    code = f"import pathlib; pathlib.Path({str(target)!r}).write_text('ran')"
    payload = (code + "\n" + "#" * (end - start - len(code) - 1)).encode()
    assert len(payload) == end - start and data.count(header) == 1
    edited = tmp_path / "edited.pkl"
    edited.write_bytes(data[:start] + payload + data[end:])
    exec(code.replace(str(target), str(control)))   # the payload works when it is run ...
    assert control.read_text() == "ran"
    snapshot = read_network_pickle(edited)
    source = snapshot["G_ema"].source
    assert isinstance(snapshot["G_ema"], NetworkRecord) and source.startswith(code)
    compile(source, "networks.py", "exec")          # ... and is valid Python a loader would run
    out = tmp_path / "edited.safetensors"
    import_network(edited, out, include_discriminator=True)
    assert not target.exists()
    ref = reference("sg2ada-uncond-32")
    with torch.no_grad():
        img = load_generator(out).synthesis(torch.from_numpy(ref["ws_psi1"]))
    assert max_diff(img, ref["img_psi1"]) <= TOLERANCE


@needs_fixtures
def test_truncated_pickle_gets_a_clear_message(tmp_path):
    data = fixture("sg2ada-uncond-32").read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 100):
        broken = tmp_path / "broken.pkl"
        broken.write_bytes(data[:cut])
        out = tmp_path / "broken.safetensors"
        with pytest.raises(NetworkImportError, match="broken.pkl .*(truncated or corrupt)"):
            import_network(broken, out)
        assert not out.exists()
    assert files_in(tmp_path) == ["broken.pkl"]


def test_foreign_pickles_get_clear_messages(tmp_path):
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    with pytest.raises(NetworkImportError, match=r"model\.pkl holds a sklearn object .*not an NVlabs network"):
        import_network(tmp_path / "model.pkl", tmp_path / "out.safetensors")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(NetworkImportError, match=r"not an NVlabs network snapshot \(G, D, G_ema\)"):
        import_network(tmp_path / "plain.pkl", tmp_path / "out.safetensors")
    # a TensorFlow-era StyleGAN pickle names dnnlib.tflib classes (protocol 2, written by hand)
    (tmp_path / "tf.pkl").write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81.")
    with pytest.raises(NetworkImportError, match="TensorFlow-era StyleGAN pickle"):
        import_network(tmp_path / "tf.pkl", tmp_path / "out.safetensors")
    (tmp_path / "text.pkl").write_text("not a pickle at all")
    with pytest.raises(NetworkImportError, match="not a Python pickle"):
        import_network(tmp_path / "text.pkl", tmp_path / "out.safetensors")
    torch.save({"g_ema": {}}, tmp_path / "zip.pkl")
    with pytest.raises(NetworkImportError, match="--from rosinality"):
        import_network(tmp_path / "zip.pkl", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


@needs_fixtures
def test_a_generator_mixing_stylegan2_and_stylegan3_layers_is_refused(tmp_path):
    """A StyleGAN3 generator is recognised by its SynthesisInput; one that also holds StyleGAN2
    blocks (here written into a fixture by renaming SynthesisLayer, the same length as
    SynthesisInput) is neither, and is refused by name."""
    data = fixture("sg2ada-uncond-32").read_bytes().replace(b"SynthesisLayer", b"SynthesisInput")
    (tmp_path / "mixed.pkl").write_bytes(data)
    with pytest.raises(NetworkImportError, match=r"SynthesisBlock, ToRGBLayer, which are not StyleGAN3 .alias-free.'s"):
        import_network(tmp_path / "mixed.pkl", tmp_path / "out.safetensors", include_discriminator=True)
    assert not (tmp_path / "out.safetensors").exists()


@needs_fixtures
@pytest.mark.parametrize("section, key, value, message", [
    ("mapping_kwargs", "num_layers", 9, "do not match a StyleGAN2 of its settings"),
    ("synthesis_kwargs", "channel_max", 32, "has shape"),
    ("synthesis_kwargs", "architecture", "resnet", "architecture = 'resnet'; supported: 'skip'"),
    ("synthesis_kwargs", "some_new_option", 1, "cannot reproduce: some_new_option"),
    (None, "some_new_option", 1, "cannot reproduce: some_new_option"),
])
def test_settings_that_do_not_fit_the_tensors_are_refused(section, key, value, message):
    """Settings and tensors are checked against each other and against what is reproduced."""
    from trainer.importers.nvlabs_pkl import convert_snapshot
    snapshot = read_network_pickle(fixture("sg2ada-uncond-32"))
    convert_snapshot(snapshot, "ok.pkl")                           # as stored: accepted
    kwargs = snapshot["G_ema"].state["_init_kwargs"]
    (kwargs[section] if section else kwargs)[key] = value
    with pytest.raises(NetworkImportError, match=re.escape(message)):
        convert_snapshot(snapshot, "odd.pkl")


@needs_fixtures
def test_synthesis_settings_given_at_the_top_level_are_read():
    """stylegan3's copy of the StyleGAN2 generator takes synthesis settings as **kwargs."""
    from trainer.importers.nvlabs_pkl import convert_snapshot
    snapshot = read_network_pickle(fixture("sg2ada-uncond-32"))
    kwargs = snapshot["G_ema"].state["_init_kwargs"]
    kwargs.update(kwargs.pop("synthesis_kwargs"), fused_modconv_default="inference_only")
    G, _, meta = convert_snapshot(snapshot, "sg3repo.pkl")
    assert json.loads(meta["config"])["channel_base"] == 512
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(reference("sg2ada-uncond-32")["ws_psi1"]))
    assert max_diff(img, reference("sg2ada-uncond-32")["img_psi1"]) <= TOLERANCE


def test_product_code_never_unpickles_unrestricted():
    """No pickle.load(s) and no torch.load without weights_only=True in trainer/ or ganstudio/."""
    offenders = []
    for path in list((ROOT / "trainer").rglob("*.py")) + list((ROOT / "ganstudio").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"pickle\.loads?\(", text)]
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start():text.find(")", m.start()) + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{path.name}: {call}")
    assert not offenders, offenders


# ---- the studio: File > Import converts, opens, and every panel works on the result ----

@needs_fixtures
def test_studio_imports_and_explores_an_nvlabs_network(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from ganstudio.widgets.main_window import MainWindow
    from conftest import TIMEOUT_MS, wait_grid, wait_shown
    window = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    out = tmp_path / "uncond32.safetensors"
    window.import_action.start(fixture("sg2ada-uncond-32"), out)       # what File > Import runs
    first = wait_shown(qtbot, window)
    assert out.is_file() and window.info.arch == "stylegan2" and window.info.num_ws == 8
    assert window.info.layer_resolutions == (4, 8, 8, 16, 16, 32, 32, 32)
    # seed 0 is the first of NVlabs' reference latents and 0.7 the studio's default psi:
    # the studio shows the image NVlabs' code computed
    assert window.workspace.psi == 0.7 and window.workspace.seed == 0
    ref = reference("sg2ada-uncond-32")["img_psi07"][0]
    expected = np.clip(ref * 127.5 + 128, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert first.shape == (32, 32, 3)
    assert np.abs(first.astype(int) - expected.astype(int)).max() <= 1
    window.truncation_panel.psi_slider.setValue(50)                     # psi 0.5
    truncated = wait_shown(qtbot, window)
    assert not np.array_equal(truncated, first)
    window.truncation_panel.cutoff.setValue(2)                          # only the two coarsest layers
    assert not np.array_equal(wait_shown(qtbot, window), truncated)
    panel = window.mixing_panel
    window.panels.setCurrentWidget(panel)
    grid = wait_grid(qtbot, window)
    assert len(panel.layer_buttons) == 8 and grid.image.shape[0] > 64
    before_mix = wait_shown(qtbot, window)
    panel.preset_buttons["coarse"].click()
    assert not np.array_equal(wait_shown(qtbot, window), before_mix)
    qtbot.waitUntil(lambda: len(window.directions_panel.sliders) > 0 and not window.is_busy(), timeout=TIMEOUT_MS)
    before_direction = wait_shown(qtbot, window)
    window.directions_panel.sliders["PC1"].slider.setValue(40)
    assert not np.array_equal(wait_shown(qtbot, window), before_direction)
    assert not window.last_result.error
    window.close()


def test_studio_import_refusal_is_a_dialog_and_runs_nothing(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from ganstudio.widgets.main_window import MainWindow
    from conftest import TIMEOUT_MS
    window = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    target = tmp_path / "pwned.txt"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": WritesAFile(target)}))
    window.import_action.start(tmp_path / "evil.pkl", tmp_path / "evil.safetensors")
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=TIMEOUT_MS)
    assert "builtins.exec" in window.error_box.text() and "Import" in window.error_box.windowTitle()
    qtbot.waitUntil(lambda: not window.is_busy(), timeout=TIMEOUT_MS)
    assert not target.exists() and not (tmp_path / "evil.safetensors").exists() and window.info is None
    window.close()


# ---- rosinality stylegan2-pytorch checkpoints ----

def rosinality_layout(G) -> dict:
    """An NVlabs-exact generator's weights under rosinality's names and shapes (its model.py layout:
    style.k, input.input, conv1/to_rgb1, convs.i, to_rgbs.j, noises.noise_i, blur kernels)."""
    sd, out = G.state_dict(), {}
    blur = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4
    for k in range(G.cfg.mapping_layers):
        out[f"style.{k + 1}.weight"] = sd[f"mapping.fc{k}.weight"]
        out[f"style.{k + 1}.bias"] = sd[f"mapping.fc{k}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    resolutions = G.synthesis.block_resolutions[1:]
    layers = [("conv1", "synthesis.b4.conv1", 0)]
    for j, res in enumerate(resolutions):
        layers += [(f"convs.{2 * j}", f"synthesis.b{res}.conv0", 2 * j + 1),
                   (f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", 2 * j + 2)]
        out[f"convs.{2 * j}.conv.blur.kernel"] = blur
        out[f"to_rgbs.{j}.upsample.kernel"] = blur
    for src, dst, noise_index in layers:
        out[f"{src}.conv.weight"] = sd[f"{dst}.weight"][None]
        out[f"{src}.conv.modulation.weight"] = sd[f"{dst}.affine.weight"]
        out[f"{src}.conv.modulation.bias"] = sd[f"{dst}.affine.bias"]
        out[f"{src}.noise.weight"] = sd[f"{dst}.noise_strength"].reshape(1)
        out[f"{src}.activate.bias"] = sd[f"{dst}.bias"]
        out[f"noises.noise_{noise_index}"] = sd[f"{dst}.noise_const"][None, None]
    for src, dst in [("to_rgb1", "synthesis.b4.torgb")] + [(f"to_rgbs.{j}", f"synthesis.b{r}.torgb")
                                                           for j, r in enumerate(resolutions)]:
        out[f"{src}.conv.weight"] = sd[f"{dst}.weight"][None]
        out[f"{src}.conv.modulation.weight"] = sd[f"{dst}.affine.weight"]
        out[f"{src}.conv.modulation.bias"] = sd[f"{dst}.affine.bias"]
        out[f"{src}.bias"] = sd[f"{dst}.bias"].reshape(1, -1, 1, 1)
    return out


@needs_fixtures
def test_rosinality_checkpoint_imports_with_weights_only(imported, tmp_path):
    """The 64 px fixture's weights written in rosinality's layout (with `args` as rosinality's
    train.py stores it) import with --from rosinality and give NVlabs' reference images. This
    checks the layout mapping; rosinality's arithmetic is the same as NVlabs' by construction
    (see trainer/importers/rosinality.py), but no rosinality-made file is available here."""
    import argparse
    G = load_generator(imported["sg2ada-uncond-64"])
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": rosinality_layout(G), "latent_avg": G.w_avg.clone(), "args": argparse.Namespace(size=64)},
               path)
    out = tmp_path / "ros.safetensors"
    assert cli_main(["import", str(path), "--from", "rosinality", "--out", str(out)]) == 0
    R = load_generator(out)
    ref = reference("sg2ada-uncond-64")
    z = torch.from_numpy(ref["z"])
    with torch.no_grad():
        assert max_diff(R.mapping(z, None, truncation_psi=0.7), ref["ws_psi07"]) <= TOLERANCE
        assert max_diff(R(z, None, truncation_psi=0.5), ref["img_call"]) <= TOLERANCE
    meta = read_checkpoint(out)[1]
    assert meta["source"] == "rosinality-pt" and "latent_avg from the file" in meta["notes"]
    # without latent_avg, w_avg is estimated by mapping 4096 z; images at psi 1 do not depend on it
    layout = rosinality_layout(G)
    torch.save({"g_ema": layout}, tmp_path / "no_avg.pt")
    import_network(tmp_path / "no_avg.pt", tmp_path / "no_avg.safetensors", source="rosinality")
    R2 = load_generator(tmp_path / "no_avg.safetensors")
    with torch.no_grad():
        assert max_diff(R2(z, None), ref["img_psi1"]) <= TOLERANCE
    assert (R2.w_avg - G.w_avg).abs().max() < 0.5 and not torch.equal(R2.w_avg, G.w_avg)
    # a tensor it cannot place is refused, naming it
    layout["extra.weight"] = torch.zeros(3)
    torch.save({"g_ema": layout}, tmp_path / "extra.pt")
    with pytest.raises(NetworkImportError, match="cannot place: extra.weight"):
        import_network(tmp_path / "extra.pt", tmp_path / "extra.safetensors", source="rosinality")
    assert not (tmp_path / "extra.safetensors").exists()


def test_rosinality_file_with_code_is_refused_by_weights_only(tmp_path):
    target = tmp_path / "pwned.txt"
    torch.save({"g_ema": {}, "payload": WritesAFile(target)}, tmp_path / "evil.pt")
    with pytest.raises(NetworkImportError, match=r"evil\.pt could not be read .*weights_only=True"):
        import_network(tmp_path / "evil.pt", tmp_path / "evil.safetensors", source="rosinality")
    assert not target.exists() and not (tmp_path / "evil.safetensors").exists()
    with pytest.raises(NetworkImportError, match="--from nvlabs"):
        import_network(fixture("sg2ada-uncond-32") if FIXTURES.is_dir() else tmp_path / "evil.pt",
                       tmp_path / "x.safetensors", source="rosinality")
