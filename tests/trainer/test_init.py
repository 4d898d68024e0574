"""--init (a new run from a model's weights: NVlabs pickles, exports, run directories) and
--freeze-d, on real tiny runs with one thread."""
import functools
import json

import numpy as np
import pytest
import torch
from conftest import NVLABS_FIXTURES, assert_resume_reproduces, needs_nvlabs_fixtures
from PIL import Image

from trainer.checkpoint import load_state, read_checkpoint
from trainer.cli.train import main as train_main
from trainer.config import ConfigError, DataConfig
from trainer.data.datasets import load_dataset
from trainer.training.init import freeze_layers, new_run_config
from trainer.training.loop import Trainer, train

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"batch": 8, "kimg": 0.008, "threads": 1, "sample_kimg": 0.0, "snapshot_kimg": 0.0, "grid_size": 2,
        "pl_weight": 0.0}   # one step; no path-length step, so G takes exactly one Adam step


def fast(**train):
    return {"data": {"source": "digits", "max_images": 64}, "train": {**FAST, **train}}


@functools.lru_cache(maxsize=2)
def snapshot_of(name: str) -> dict:
    from trainer.importers.unpickler import read_network_pickle
    return read_network_pickle(NVLABS_FIXTURES / f"{name}.pkl")


def source_tensors(name: str, net: str = "G_ema") -> dict:
    """The fixture's network as the importer reads it (the reference this project checks it against)."""
    from trainer.importers.nvlabs_pkl import convert_snapshot
    snapshot = snapshot_of(name)
    G, D, _ = convert_snapshot({net: snapshot[net]} if net != "D" else snapshot, name, include_discriminator=net == "D")
    return (D if net == "D" else G).state_dict()


def assert_within_one_step(ckpt, source: dict, lr: float) -> None:
    """The exported G_ema differs from the source by at most one Adam step (|step| <= lr, plus the
    rounding of float32 values as large as the mapping's raw weights, ~100) and moved."""
    tensors, _ = read_checkpoint(ckpt)
    assert set(source) <= set(tensors)
    moved = 0.0
    for name, value in source.items():
        diff = (tensors[name] - value).abs()
        if name.endswith("w_avg"):   # a buffer: follows the batch's mean w (beta 0.995)
            assert float(diff.max()) < 0.05 * float(value.abs().max()) + 1e-3, name
            continue
        rounding = 2 * torch.finfo(torch.float32).eps * value.abs()
        assert bool((diff <= lr * 1.0001 + rounding).all()), f"{name} moved {float(diff.max())} > {lr}"
        moved = max(moved, float(diff.max()) if diff.numel() else 0.0)
    assert moved > lr / 10   # it trained


def digits_folder(root, classes=(0, 1, 2), per_class=24):
    """A real image folder of three digit classes (sub-folders name the classes)."""
    data = load_dataset(DataConfig(source="digits", resolution=8, channels=1, conditional=True))
    for c in classes:
        (root / f"digit{c}").mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(data.labels.numpy() == c)[:per_class]):
            Image.fromarray(data.data[index, 0].numpy()).save(root / f"digit{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def stylegan2_run(tmp_path_factory):
    """A tiny exact-StyleGAN2 run of three steps, whose run directory and export sources can start others."""
    from conftest import tiny_config
    cfg = tiny_config("stylegan2", train={"kimg": 0.024, "snapshot_kimg": 0.0, "sample_kimg": 0.0, "threads": 1})
    return train(cfg, outdir=tmp_path_factory.mktemp("source"), progress=False, log=lambda *_: None)


# ---- NVlabs pickles ---------------------------------------------------------------------------------
@pytest.mark.slow
@needs_nvlabs_fixtures
def test_init_copies_every_tensor_of_an_nvlabs_pickle_before_any_step(tmp_path):
    """The architecture comes from the pickle (z 512, w 128, channel_base 512 / 64, 32 px, RGB);
    after the copy G, G_ema and D equal the pickle's networks bit for bit."""
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"), given=fast())
    m = cfg.model
    assert (m.arch, m.z_dim, m.w_dim, m.channel_base, m.channel_max, cfg.data.resolution, cfg.data.channels) == \
        ("stylegan2", 512, 128, 512, 64, 32, 3)
    task = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert "G 87 of 87 tensors copied" in task.describe()
    for net, module in (("G", task.G), ("G_ema", task.G_ema), ("D", task.D)):
        source = source_tensors("sg2ada-uncond-32", net)
        for name, value in module.state_dict().items():
            assert torch.equal(value, source[name]), f"{net}.{name}"


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_a_run_from_an_nvlabs_pickle_is_one_step_from_it_and_its_log_says_so(tmp_path, capsys):
    pkl = NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"
    assert train_main(["--init", str(pkl), "--data", "digits", "--max-images", "64", "--batch", "8", "--kimg",
                       "0.008", "--threads", "1", "--pl-weight", "0", "--sample-kimg", "0", "--snapshot-kimg", "0",
                       "--grid-size", "2", "--outdir", str(tmp_path)]) == 0
    console = capsys.readouterr().out
    run = next(tmp_path.iterdir())
    first = json.loads((run / "events.jsonl").read_text().splitlines()[0])
    for text in (console, first["message"]):
        assert f"initialised from {pkl.resolve()}" in text and "G 87 of 87 tensors copied" in text \
            and "D 37 of 37 tensors copied" in text
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["init"] == str(pkl.resolve()) and config["preset"] == "stylegan2"
    assert_within_one_step(run / "checkpoints" / "step-000001.safetensors", source_tensors("sg2ada-uncond-32"),
                           config["train"]["g_lr"])


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_a_ten_class_pickle_starts_a_three_class_run_with_a_fresh_label_embedding(tmp_path):
    """cond10 -> three digit classes: every tensor but the label embeddings is copied (G's
    mapping.embed [128, 10] -> [128, 3]; D's mapping.embed likewise); they start fresh."""
    data = digits_folder(tmp_path / "three")
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg2ada-cond10-32.pkl"),
                         given={"data": {"source": str(data)}, "train": FAST})
    assert cfg.data.conditional and cfg.preset == "stylegan2-cond"
    result = train(cfg, outdir=tmp_path / "runs", progress=False, log=lambda *_: None)
    assert result.state == "finished"
    message = json.loads((result.run_dir / "events.jsonl").read_text().splitlines()[0])["message"]
    assert "G 88 of 89 tensors copied; kept fresh: 1 of another shape: mapping.embed.weight [128, 10] -> [128, 3]" \
        in message
    assert "D 54 of 55 tensors copied; kept fresh: 1 of another shape: mapping.embed.weight [64, 10] -> [64, 3]" \
        in message
    source = source_tensors("sg2ada-cond10-32")
    tensors, _ = read_checkpoint(result.run_dir / "checkpoints" / "step-000001.safetensors")
    assert tensors["mapping.embed.weight"].shape == (128, 3)
    assert_within_one_step(result.run_dir / "checkpoints" / "step-000001.safetensors",
                           {k: v for k, v in source.items() if k != "mapping.embed.weight"}, cfg.train.g_lr)


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_a_ten_class_pickle_into_an_unconditional_run_leaves_the_label_parts_fresh(tmp_path):
    """--no-conditional: the embedding has no place, and the first mapping layer (z and the embedded
    label concatenated: 640 inputs) takes z alone (512): both start fresh, the synthesis is copied."""
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg2ada-cond10-32.pkl"),
                         given={"data": {"source": "digits", "max_images": 64, "conditional": False},
                                "train": FAST})
    assert not cfg.data.conditional
    task = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    text = task.describe()
    assert "mapping.fc0.weight [128, 640] -> [128, 512]" in text and "source tensors unused: mapping.embed" in text
    source = source_tensors("sg2ada-cond10-32")
    assert torch.equal(task.G_ema.synthesis.b32.conv1.weight, source["synthesis.b32.conv1.weight"])


@needs_nvlabs_fixtures
def test_a_conditional_source_on_unsorted_pictures_starts_an_unconditional_run_and_says_so(tmp_path, capsys):
    """An artist's folder without class sub-folders: with no --conditional given, the 10-class
    model starts an unconditional run (the stylegan2 preset) with a note, instead of refusing for
    lack of classes; --conditional given explicitly still asks for classes and is refused."""
    from trainer.data.datasets import class_count
    sorted_folder = digits_folder(tmp_path / "sorted")
    unsorted = tmp_path / "unsorted"
    unsorted.mkdir()
    for i, picture in enumerate(sorted(sorted_folder.rglob("*.png"))):
        picture.rename(unsorted / f"{i}.png")
    assert (class_count(str(unsorted)), class_count("fashion-mnist"), class_count(str(tmp_path / "absent"))) == (0, 10, None)
    pkl = str(NVLABS_FIXTURES / "sg2ada-cond10-32.pkl")
    notes = []
    cfg = new_run_config(pkl, given={"data": {"source": str(unsorted)}, "train": FAST}, notes=notes)
    assert not cfg.data.conditional and cfg.preset == "stylegan2"
    assert len(notes) == 1 and "is conditional (10 classes)" in notes[0] and "has no classes" in notes[0]
    named = new_run_config(pkl, "stylegan2-cond", given={"data": {"source": str(unsorted)}, "train": FAST})
    assert not named.data.conditional and named.preset == "stylegan2"   # as the studio's New run form asks
    kept = new_run_config(pkl, given={"data": {"source": str(unsorted), "conditional": True}, "train": FAST})
    assert kept.data.conditional   # asked for: load_dataset then says the folder has no classes
    assert train_main(["--init", pkl, "--data", str(unsorted), "--conditional", "--kimg", "0.008", "--batch", "8",
                       "--threads", "1", "--outdir", str(tmp_path / "runs")]) == 2
    assert "needs at least two classes" in capsys.readouterr().err


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_an_option_given_wins_over_the_source_and_the_blocks_that_still_fit_are_copied(tmp_path):
    """--resolution 64 from the 32 px pickle: the channel_base and widths stay the source's, so the
    4-32 px blocks fit and are copied; the 64 px block is new and starts fresh."""
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"),
                         given={"data": {"source": "digits", "max_images": 64, "resolution": 64}, "train": FAST})
    assert cfg.data.resolution == 64 and cfg.model.channel_base == 512
    task = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    text = task.describe()
    assert "not in the source: synthesis.b64." in text
    source = source_tensors("sg2ada-uncond-32")
    assert torch.equal(task.G_ema.synthesis.b32.conv1.weight, source["synthesis.b32.conv1.weight"])
    assert torch.equal(task.G_ema.mapping.w_avg, source["mapping.w_avg"])


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_a_source_that_fits_nothing_is_refused_before_a_run_directory_exists(tmp_path, capsys):
    args = ["--init", str(NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"), "--channel-base", "4096",
            "--channel-max", "256", "--kimg", "0.004", "--threads", "1", "--outdir", str(tmp_path / "runs")]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "none of G's weight tensors outside its mapping network fits" in err and "would start from scratch" in err
    assert not (tmp_path / "runs").exists()
    assert train_main(["--init", str(tmp_path / "nothing.pkl"), "--outdir", str(tmp_path / "runs")]) == 2
    assert "no such file or run directory" in capsys.readouterr().err
    # the Python API checks it too, with a config made by hand rather than by the CLI
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"), "stylegan2", fast())
    cfg.model.channel_base, cfg.model.channel_max = 4096, 256
    with pytest.raises(ConfigError, match="outside its mapping network"):
        train(cfg, outdir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@needs_nvlabs_fixtures
def test_a_stylegan3_pickle_starts_a_stylegan3_run_one_step_from_it(tmp_path):
    """sg3-r-32: the run's widths are half the pickle's (-R doubles them), its Fourier features,
    filters and magnitude EMAs are the pickle's."""
    cfg = new_run_config(str(NVLABS_FIXTURES / "sg3-r-32.pkl"), given=fast())
    assert (cfg.model.arch, cfg.model.channel_base, cfg.model.channel_max, cfg.model.mapping_layers) == \
        ("stylegan3-r", 1024, 64, 2)
    result = train(cfg, outdir=tmp_path, progress=False, log=lambda *_: None)
    message = json.loads((result.run_dir / "events.jsonl").read_text().splitlines()[0])["message"]
    g_part, d_part = message.split(". D ")
    assert "G 114 of 114 tensors copied" in g_part and "kept fresh" not in g_part
    # the fixture's D was made with channel_base 512, not NVlabs' train.py's (G's, halved for -R):
    # its first block's widths differ from this run's D, which keeps that block fresh
    assert "kept fresh: 11 of another shape: b32.fromrgb.weight [16, 3, 1, 1] -> [32, 3, 1, 1]" in d_part
    source = source_tensors("sg3-r-32")
    ckpt = result.run_dir / "checkpoints" / "step-000001.safetensors"
    tensors, _ = read_checkpoint(ckpt)
    assert torch.equal(tensors["synthesis.input.freqs"], source["synthesis.input.freqs"])
    params = {k: v for k, v in source.items() if "magnitude_ema" not in k}   # buffers that follow the data
    assert_within_one_step(ckpt, {**params, **{k: tensors[k] for k in source if k not in params}}, cfg.train.g_lr)


# ---- runs and exports made here ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_directory_starts_a_run_with_its_g_g_ema_and_d(stylegan2_run, tmp_path):
    state = load_state(stylegan2_run.run_dir / "state" / "last.pt")
    cfg = new_run_config(str(stylegan2_run.run_dir), given=fast())
    assert cfg.model.channel_base == 128 and cfg.data.resolution == 16   # the tiny run's, not the preset's
    task = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert "(run directory)" in task.describe()
    for net, module in (("G", task.G), ("G_ema", task.G_ema), ("D", task.D)):
        for name, value in module.state_dict().items():
            assert torch.equal(value, state[net][name]), f"{net}.{name}"
    assert not torch.equal(state["G"]["synthesis.b16.conv1.weight"], state["G_ema"]["synthesis.b16.conv1.weight"])


@pytest.mark.slow
def test_an_export_starts_g_and_g_ema_from_its_weights_and_d_from_its_run(stylegan2_run, tmp_path):
    last = stylegan2_run.run_dir / "checkpoints" / "step-000003.safetensors"
    task = Trainer(new_run_config(str(last), given=fast()), tmp_path / "a", progress=False,
                   log=lambda *_: None)
    text = task.describe()
    assert "D 28 of 28 tensors copied" in text   # the run's state is of this step
    tensors, _ = read_checkpoint(last)
    assert all(torch.equal(v, tensors[k]) for k, v in task.G_ema.state_dict().items())
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(last.read_bytes())   # the same file outside its run: no D
    task = Trainer(new_run_config(str(lone), given=fast()), tmp_path / "b", progress=False,
                   log=lambda *_: None)
    text = task.describe()
    assert "G 56 of 56 tensors copied (from the source's G_ema)" in text and "D starts fresh" in text


@pytest.mark.slow
def test_an_init_run_resumes_its_own_state_even_without_its_source(stylegan2_run, tmp_path):
    import shutil
    source = tmp_path / "source"
    shutil.copytree(stylegan2_run.run_dir, source)
    cfg = new_run_config(str(source), given=fast(kimg=0.024))
    full = train(cfg, outdir=tmp_path / "full", progress=False, log=lambda *_: None)
    half = train(new_run_config(str(source), given=fast(kimg=0.016)), outdir=tmp_path / "half",
                 progress=False, log=lambda *_: None)
    shutil.rmtree(source)   # a resume continues its own state: the source is not read again
    assert_resume_reproduces(full, half, 0.024)
    lines = (half.run_dir / "events.jsonl").read_text().splitlines()
    assert sum("initialised from" in line for line in lines) == 1


# ---- freeze-D ------------------------------------------------------------------------------------------------
def test_freeze_d_counts_resolution_blocks_of_the_stylegan_d_and_layers_of_dcgan(tiny):
    """NVlabs' D: a layer is a block (fromrgb, conv0, conv1, skip), from the highest resolution down;
    the epilogue and the label mapping always learn. dcgan: a convolution with its batch norm."""
    from trainer.models import build_discriminator
    cfg = tiny("stylegan2", resolution=32).model
    cfg.img_resolution, cfg.img_channels, cfg.c_dim = 32, 1, 3
    D = build_discriminator(cfg)
    frozen = freeze_layers(D, 2)
    assert frozen == [f"{b}.{layer}.{kind}" for b in ("b32", "b16") for layer in ("fromrgb", "conv0", "conv1", "skip")
                      for kind in ("weight", "bias") if not (layer == "skip" and kind == "bias")
                      and not (b == "b16" and layer == "fromrgb")]
    assert {n for n, _ in D.named_buffers()} >= set(frozen) and not set(frozen) & {n for n, _ in D.named_parameters()}
    assert D.state_dict().keys() == build_discriminator(cfg).state_dict().keys()
    with pytest.raises(ConfigError, match="has 3 layers that can be frozen \\(resolution blocks\\)"):
        freeze_layers(build_discriminator(cfg), 4)
    dcgan = tiny("dcgan", resolution=32).model
    dcgan.img_resolution = 32
    assert freeze_layers(build_discriminator(dcgan), 2) == ["net.0.weight", "net.0.bias", "net.2.weight",
                                                            "net.3.weight", "net.3.bias"]


@pytest.mark.slow
@pytest.mark.parametrize("preset, frozen_layer", [("stylegan2", "b16.conv1.weight"), ("dcgan", "net.0.weight")])
def test_frozen_layers_stay_bit_identical_while_the_rest_trains(tiny, tmp_path, preset, frozen_layer):
    cfg = tiny(preset, train={"freeze_d": 1, "threads": 1})
    task = Trainer(cfg, tmp_path, progress=False, log=lambda *_: None)
    before = {k: v.clone() for k, v in task.D.state_dict().items()}
    trainable = {n for n, _ in task.D.named_parameters()}
    assert frozen_layer not in trainable
    assert f"D's first 1 layer(s) frozen: {len(task.frozen)} tensors" in task.describe()   # the start line says so
    optimised = {id(p) for group in task.opt_D.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in task.D.parameters()}
    for _ in range(3):
        task.train_step()
    after = task.D.state_dict()
    assert torch.equal(after[frozen_layer], before[frozen_layer])
    frozen = [n for n in before if n not in trainable and not n.split(".")[-1].startswith(("running", "num_batches"))]
    assert frozen and all(torch.equal(after[n], before[n]) for n in frozen)
    assert all(not torch.equal(after[n], before[n]) for n in trainable if n.endswith("weight"))
