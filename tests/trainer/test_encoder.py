"""The W+ encoder: trained on a tiny model's own samples it starts inversions better than w_avg;
its file is plain tensors naming the checkpoint it was trained for, and inversion uses it only
with that checkpoint (a mismatch is said, and inversion falls back to the best of random w)."""
import json

import pytest
import torch

from conftest import export_tiny
from trainer import load_generator
from trainer.cli import main as cli_main
from trainer.inversion.encoder import (EncoderError, default_encoder_path, find_encoder, load_encoder, read_encoder_metadata,
                             save_encoder)
from trainer.inversion.encoder_train import EncoderTrainSettings, draw_samples, evaluate_encoder, train_encoder
from trainer.files import file_sha256
from trainer.inversion.losses import psnr
from trainer.inversion.project import ProjectionSettings, project

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

QUICK = EncoderTrainSettings(kimg=0.96, batch=16, lr=3e-3, width=8, max_width=16, hidden=64, eval_samples=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model's checkpoint and an encoder trained for it (60 steps of 16 samples)."""
    folder = tmp_path_factory.mktemp("encoder")
    checkpoint = export_tiny(folder / "tiny.safetensors", c_dim=0)
    G = load_generator(checkpoint)
    return checkpoint, G, train_encoder(G, QUICK)


def test_a_trained_encoder_starts_closer_than_w_avg_on_the_models_own_samples(trained):
    _, G, result = trained
    assert result.steps == 60
    assert result.start_psnr > result.w_avg_psnr + 1.0, result.figures()   # held-out samples, in dB
    untrained = train_encoder(G, QUICK.__class__(**{**QUICK.to_dict(), "kimg": 0.016}))   # one step
    assert evaluate_encoder(G, untrained.encoder, QUICK)["start_psnr"] < result.start_psnr - 1.0


def test_the_encoder_file_is_plain_tensors_naming_its_checkpoint(trained, tmp_path):
    checkpoint, G, result = trained
    path = tmp_path / "e.safetensors"
    save_encoder(path, result.encoder, checkpoint, {"kimg": QUICK.kimg})
    assert path.read_bytes()[8:9] == b"{"                                   # a safetensors header, no pickle
    meta = read_encoder_metadata(path)
    assert meta["generator_sha256"] == file_sha256(checkpoint)
    assert json.loads(meta["config"])["num_ws"] == G.num_ws and json.loads(meta["training"])["kimg"] == QUICK.kimg
    again = load_encoder(path, checkpoint_sha256=file_sha256(checkpoint))
    _, images = draw_samples(G, 4, QUICK, result.encoder.w_avg, result.encoder.w_spread,
                             torch.Generator().manual_seed(1))
    assert torch.equal(again(images), result.encoder(images))


def test_inversion_finds_the_encoder_beside_its_checkpoint_and_starts_there(trained):
    checkpoint, G, result = trained
    save_encoder(default_encoder_path(checkpoint), result.encoder, checkpoint, {})
    _, images = draw_samples(G, 6, QUICK, result.encoder.w_avg, result.encoder.w_spread,
                             torch.Generator().manual_seed(2))
    one_step = ProjectionSettings(steps=1, lr=1e-9)                      # defaults: init "auto"
    from_encoder = project(G, images, one_step)
    assert from_encoder.start == "encoder" and from_encoder.notes == ()
    from_avg = project(G, images, one_step.replace(init="w_avg"))
    assert psnr(torch.from_numpy(from_encoder.reconstruction).permute(0, 3, 1, 2).float() / 127.5 - 1, images).mean() \
        > psnr(torch.from_numpy(from_avg.reconstruction).permute(0, 3, 1, 2).float() / 127.5 - 1, images).mean()
    default_encoder_path(checkpoint).unlink()


def test_an_encoder_for_another_checkpoint_is_refused_with_a_message(trained, tmp_path, capsys):
    checkpoint, G, result = trained
    other = export_tiny(tmp_path / "other.safetensors", c_dim=0, seed=1)   # same shape, other weights
    save_encoder(default_encoder_path(other), result.encoder, checkpoint, {})
    path, note = find_encoder(other)
    assert path is None and "trained for another checkpoint" in note and "ganstudio-train encoder" in note
    with pytest.raises(EncoderError, match="trained for another checkpoint"):
        load_encoder(default_encoder_path(other), checkpoint_sha256=file_sha256(other))
    G_other = load_generator(other)
    targets = torch.zeros(1, 1, 16, 16)
    r = project(G_other, targets, ProjectionSettings(steps=1, init="encoder"))
    assert r.start == "best_of_n" and "trained for another checkpoint" in r.notes[0]
    assert cli_main(["invert", "--checkpoint", str(other), "--out", str(tmp_path / "out"), "--steps", "2",
                     str(write_png(tmp_path / "p.png"))]) == 0
    assert "trained for another checkpoint" in capsys.readouterr().err


def write_png(path):
    from PIL import Image
    Image.new("L", (20, 20), 200).save(path)
    return path


def test_the_encoder_command_writes_beside_the_checkpoint(tmp_path, capsys):
    checkpoint = export_tiny(tmp_path / "tiny.safetensors", c_dim=3)
    assert cli_main(["encoder", "--checkpoint", str(checkpoint), "--kimg", "0.032", "--batch", "16", "--width", "8",
                     "--max-width", "16", "--hidden", "32", "--eval-samples", "16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and str(default_encoder_path(checkpoint)) in out
    assert read_encoder_metadata(default_encoder_path(checkpoint))["generator_sha256"] == file_sha256(checkpoint)
    assert cli_main(["encoder", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2


def test_a_model_without_w_gets_a_clear_message(tmp_path, capsys):
    dcgan = export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan")
    assert cli_main(["encoder", "--checkpoint", str(dcgan), "--kimg", "0.016"]) == 2
    assert "no W space" in capsys.readouterr().err


def test_a_damaged_encoder_file_is_said_and_skipped(trained, tmp_path):
    checkpoint, G, result = trained
    path = default_encoder_path(checkpoint)
    save_encoder(path, result.encoder, checkpoint, {})
    path.write_bytes(path.read_bytes()[:200])                  # cut short inside its tensors
    try:
        r = project(G, torch.zeros(1, 1, 16, 16), ProjectionSettings(steps=1))
        assert r.start == "best_of_n" and "cannot read encoder" in r.notes[0]
    finally:
        path.unlink()
