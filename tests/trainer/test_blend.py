"""Layer blending (trainer.models.blend, `ganstudio-train blend`): a blend at a resolution holds
exactly the expected tensors of each parent, for the exact StyleGAN2, StyleGAN3-T and -R and the
compact StyleGAN2; mix 0 and a full B blend draw the parents' images; a pair that does not blend
is refused naming the first difference; the CLI works end to end on real files, NVlabs pickles
included (the fixtures hold no two pickles of one architecture, so one is blended with a perturbed
copy of itself)."""
import json

import pytest
import torch

from trainer.checkpoint import export_generator, load_generator, read_checkpoint
from trainer.cli import main as cli
from trainer.latents import LatentMapper, LatentState
from trainer.models import ARCHS
from trainer.models.blend import (BlendError, BlendSpec, blend_state_dicts, check_blendable, load_parent,
                                  synthesis_layers, write_blend)

from conftest import NVLABS_FIXTURES, export_tiny, needs_nvlabs_fixtures

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

BLENDABLE = ("stylegan2", "stylegan3-t", "stylegan3-r", "stylegan2-compact")
RESOLUTION = 32   # StyleGAN3 samples a 32 px image at 16 and 32 px: two sides to the swap


@pytest.fixture(scope="module")
def parents(tmp_path_factory):
    """arch -> (A, B): two tiny random generators of that arch, different seeds, as real files."""
    folder = tmp_path_factory.mktemp("parents")
    out = {}
    for arch in BLENDABLE:
        files = [export_tiny(folder / f"{arch}-{side}.safetensors", arch=arch, c_dim=0, resolution=RESOLUTION,
                             seed=seed) for side, seed in (("a", 1), ("b", 2))]
        out[arch] = tuple(load_parent(f) for f in files)
    return out


def layer_of(key: str, layers) -> int:
    """The resolution of the synthesis layer a tensor belongs to."""
    name = key.split(".")[1]
    found = [l for l in layers if l.name in (name, ".".join(key.split(".")[1:3]))]
    assert len(found) == 1, key
    return found[0].resolution


@pytest.mark.parametrize("arch", BLENDABLE)
@pytest.mark.parametrize("mapping", ["a", "b"])
def test_a_swap_takes_every_tensor_from_the_expected_parent(arch, mapping, parents, tmp_path):
    a, b = parents[arch]
    write_blend(a, b, BlendSpec(swap_at=16, mapping=mapping), tmp_path / "c.safetensors")
    tensors, metadata = read_checkpoint(tmp_path / "c.safetensors")
    layers = synthesis_layers(arch, a.config, a.tensors)
    assert set(tensors) == set(a.tensors)
    from_a = from_b = 0
    for key, value in tensors.items():
        if key.startswith("mapping."):
            expected = b if mapping == "b" else a
        else:
            expected = a if layer_of(key, layers) <= 16 else b
        other = b if expected is a else a
        assert torch.equal(value, expected.tensors[key]), key
        if not torch.equal(value, other.tensors[key]):   # filters and the like are alike in both
            from_a, from_b = from_a + (expected is a), from_b + (expected is b)
    assert from_a > 5 and from_b > 5   # both parents really gave distinct tensors
    record = json.loads(metadata["blend"])
    assert (record["a"]["sha256"], record["b"]["sha256"]) == (a.sha256, b.sha256)
    assert record["swap_at"] == 16 and record["mapping"] == mapping
    assert load_generator(tmp_path / "c.safetensors").checkpoint_info["config"]["arch"] == arch   # it opens


def test_stylegan3_layers_are_placed_by_their_sampling_rate(parents):
    """L<i>_<size>_<channels>: the index i names the layer, its resolution is layer i's output
    sampling rate (the margin left out), the same rate the synthesis network was built with."""
    a = parents["stylegan3-t"][0]
    G = load_generator(a.path)
    layers = synthesis_layers("stylegan3-t", a.config, a.tensors)
    assert layers[0].name == "input" and layers[0].resolution == G.synthesis.input.sampling_rate
    by_name = {l.name: l for l in layers}
    for name, layer in zip(G.synthesis.layer_names, G.synthesis.layers):
        assert by_name[name].resolution == layer.out_sampling_rate
        assert (by_name[name].size, by_name[name].channels) == (layer.out_size, layer.out_channels)
    assert sorted({l.resolution for l in layers}) == [16, 32]


def images(parent, seeds=(0, 1, 2)) -> torch.Tensor:
    G = load_generator(parent.path)
    mapper = LatentMapper(G, "cpu")
    with torch.no_grad():
        return mapper.images([LatentState(seed=s) for s in seeds])


@pytest.mark.slow
@pytest.mark.parametrize("arch", BLENDABLE)
def test_mix_0_draws_a_and_a_whole_b_blend_draws_b(arch, parents, tmp_path):
    a, b = parents[arch]
    write_blend(a, b, BlendSpec(swap_at=16, mix=0.0), tmp_path / "t0.safetensors")
    write_blend(a, b, BlendSpec(swap_at=0, mix=1.0, mapping="b"), tmp_path / "t1.safetensors")
    image_a, image_b = images(a), images(b)
    assert (image_a - image_b).abs().max() > 0.01   # the parents draw different images
    assert torch.equal(images(load_parent(tmp_path / "t0.safetensors")), image_a)
    assert torch.equal(images(load_parent(tmp_path / "t1.safetensors")), image_b)


def test_a_mix_interpolates_the_layers_above_the_swap(parents):
    a, b = parents["stylegan2"]
    blended = blend_state_dicts("stylegan2", a.config, a.tensors, b.tensors, BlendSpec(swap_at=8, mix=0.25))
    key, low = "synthesis.b16.conv0.weight", "synthesis.b8.conv0.weight"
    assert torch.allclose(blended[key], 0.75 * a.tensors[key] + 0.25 * b.tensors[key], atol=1e-6)
    assert torch.equal(blended[low], a.tensors[low])
    noise = blended["synthesis.b32.conv1.noise_const"]   # constant noise keeps unit variance
    assert 0.7 < float(noise.std()) < 1.4 and not torch.equal(noise, a.tensors["synthesis.b32.conv1.noise_const"])


def test_a_smooth_ramp_rises_through_the_swap_and_narrows_to_it():
    smooth = BlendSpec(swap_at=16, width=1.0)
    weights = [smooth.weight(r) for r in (4, 8, 16, 32, 64, 128)]
    assert weights == sorted(weights) and 0 < weights[0] and weights[-1] < 1
    assert weights[2] == pytest.approx(1 - weights[3])   # centred between 16 and 32, where the swap switches
    narrow = BlendSpec(swap_at=16, width=0.01)
    assert [round(narrow.weight(r), 6) for r in (8, 16, 32, 64)] == [0, 0, 1, 1]
    assert BlendSpec(swap_at=0, mix=0.3).weight(4) == pytest.approx(0.3)
    assert BlendSpec(swap_at=16, mix=0.5).weight(32) == 0.5 and BlendSpec(swap_at=16, mix=0.5).weight(16) == 0


@pytest.mark.parametrize("bad,words", [
    ({"swap_at": 12}, "power of two"), ({"swap_at": -4}, "power of two"), ({"mix": 1.5}, "mix 1.5"),
    ({"width": -1.0}, "width -1.0"), ({"mapping": "c"}, "mapping 'c'")])
def test_settings_out_of_range_are_refused(bad, words):
    with pytest.raises(BlendError, match=words):
        BlendSpec(**bad)


def test_a_pair_that_does_not_blend_is_refused_naming_the_first_difference(parents, tmp_path):
    a = parents["stylegan2"][0]
    with pytest.raises(BlendError, match="A is stylegan2 and B is stylegan3-t"):
        write_blend(a, parents["stylegan3-t"][1], BlendSpec(), tmp_path / "x.safetensors")
    bigger = load_parent(export_tiny(tmp_path / "64.safetensors", arch="stylegan2", c_dim=0, resolution=64))
    with pytest.raises(BlendError, match=r"differ in img_resolution \(A: 32, B: 64\)"):
        write_blend(a, bigger, BlendSpec(), tmp_path / "x.safetensors")
    labelled = load_parent(export_tiny(tmp_path / "c3.safetensors", arch="stylegan2", c_dim=3, resolution=32))
    with pytest.raises(BlendError, match=r"differ in c_dim \(A: 0, B: 3\)"):
        write_blend(a, labelled, BlendSpec(), tmp_path / "x.safetensors")
    missing = {k: v for k, v in a.tensors.items() if k != "synthesis.b8.conv1.bias"}
    with pytest.raises(BlendError, match="synthesis.b8.conv1.bias is in A but not in B"):
        check_blendable("stylegan2", a.config, a.tensors, "stylegan2", a.config, missing)
    with pytest.raises(BlendError, match="blending works on"):
        check_blendable("dcgan", {}, {}, "dcgan", {}, {})
    assert not (tmp_path / "x.safetensors").exists()


def test_the_cli_blends_real_files_and_run_directories(parents, tmp_path, capsys):
    a, b = parents["stylegan2"]
    run = tmp_path / "00000-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step-000004.safetensors").write_bytes(open(b.path, "rb").read())
    out = tmp_path / "c.safetensors"
    assert cli(["blend", a.path, str(run), "--swap-at", "8", "--mix", "0.5", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "8 px  b8: A" in printed and "16 px  b16: 50% A + 50% B" in printed
    record = json.loads(read_checkpoint(out)[1]["blend"])
    assert record["b"]["path"] == str((run / "checkpoints" / "step-000004.safetensors").resolve()) and record["mix"] == 0.5
    assert cli(["blend", a.path, b.path, "--out", str(out)]) == 1             # no --force: kept
    assert "exists" in capsys.readouterr().err
    assert cli(["blend", a.path, parents["stylegan2-compact"][1].path, "--out", str(tmp_path / "y.safetensors")]) == 2
    assert "A is stylegan2 and B is stylegan2-compact" in capsys.readouterr().err
    assert cli(["blend", a.path, b.path, "--swap-at", "12", "--out", str(tmp_path / "y.safetensors")]) == 2
    assert not (tmp_path / "y.safetensors").exists()


def perturbed_copy(pkl, out):
    """The NVlabs pickle imported, every synthesis weight moved a little: a second model of its
    architecture (as a short fine-tune would give)."""
    from trainer.importers.nvlabs_pkl import convert_nvlabs_pickle
    G, _, metadata = convert_nvlabs_pickle(pkl)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.startswith("synthesis."):
                p.add_(0.1 * torch.randn_like(p))
    cfg = ARCHS[metadata["arch"]].config_type.from_dict(json.loads(metadata["config"]))
    export_generator(G, out, cfg, 0, 0.0, json.loads(metadata["dataset"]))
    return out


@needs_nvlabs_fixtures
@pytest.mark.slow
@pytest.mark.parametrize("name", ["sg2ada-uncond-32", "sg3-r-32"])
def test_the_cli_blends_an_nvlabs_pickle_with_a_perturbed_copy(name, tmp_path):
    pkl = NVLABS_FIXTURES / f"{name}.pkl"
    copy = perturbed_copy(pkl, tmp_path / "perturbed.safetensors")
    out = tmp_path / "c.safetensors"
    assert cli(["blend", str(pkl), str(copy), "--swap-at", "16", "--out", str(out), "--threads", "1"]) == 0
    a, b, c = load_parent(pkl), load_parent(copy), load_parent(out)
    layers = synthesis_layers(a.arch, a.config, a.tensors)
    kept = {"a": 0, "b": 0}
    for key, value in c.tensors.items():
        side = "a" if key.startswith("mapping.") or layer_of(key, layers) <= 16 else "b"
        assert torch.equal(value, (a if side == "a" else b).tensors[key]), key
        kept[side] += not torch.equal(a.tensors[key], b.tensors[key])
    assert kept["a"] > 0 and kept["b"] > 0
    assert json.loads(read_checkpoint(out)[1]["blend"])["a"]["sha256"] == a.sha256


@needs_nvlabs_fixtures
def test_two_nvlabs_pickles_of_different_class_counts_are_refused(tmp_path, capsys):
    pkls = [str(NVLABS_FIXTURES / f"{n}.pkl") for n in ("sg2ada-uncond-32", "sg2ada-cond10-32")]
    assert cli(["blend", *pkls, "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "differ in c_dim (A: 0, B: 10)" in capsys.readouterr().err

