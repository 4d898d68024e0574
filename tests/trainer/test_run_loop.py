"""One run loop for every task: what a latent GAN run gets, an image-to-image run gets too (the
changed-settings line on resume, in-training metrics, precision), one config shape that still
reads the older translation files, and the options refused before any directory is made."""
import json

import pytest
import torch

from trainer.checkpoint import load_state, save_state
from trainer.cli import main as cli
from trainer.config import ConfigError, RunConfig, TranslationTrainConfig, is_translation_config
from trainer.events import read_events
from trainer.training.loop import Trainer, train
from trainer.training.presets import PRESETS, preset_config

TINY = {"data": {"resolution": 16, "max_images": 16},
        "model": {"g_width": 4, "d_width": 4, "resnet_blocks": 1},
        "train": {"batch": 4, "kimg": 0.016, "log_every": 1, "sample_kimg": 0.016, "snapshot_kimg": 0.016,
                  "grid_size": 2, "threads": 1, "metrics_images": 8, "metrics": ""}}
GAN_TINY = ["--data", "digits", "--resolution", "16", "--width", "8", "--max-width", "16", "--z-dim", "16",
            "--batch", "8", "--max-images", "64", "--grid-size", "2", "--threads", "1"]


def tiny(preset="pix2pix", **train_options):
    return preset_config(preset, **{**TINY, "train": {**TINY["train"], **train_options}})


def statuses(run_dir):
    return [e for e in read_events(run_dir / "events.jsonl") if e["kind"] == "status"]


def test_one_preset_registry_and_one_config_shape():
    assert {PRESETS[name]["task"] for name in ("dcgan", "stylegan2", "toy-gan")} == {"gan"}
    assert {PRESETS[name]["task"] for name in ("pix2pix", "cyclegan")} == {"translation"}
    cfg = preset_config("cyclegan")
    assert cfg.task == "translation" and isinstance(cfg.train, TranslationTrainConfig)
    assert RunConfig.from_json(cfg.to_json()) == cfg
    old = {**json.loads(cfg.to_json()), "kind": "translation"}   # a config.json before `task` existed
    del old["task"]
    assert RunConfig.from_dict(old) == cfg and is_translation_config(old) and is_translation_config(cfg.to_dict())
    gan = json.loads(preset_config("dcgan").to_json())
    del gan["task"]                                               # a GAN config.json before `task` existed
    assert RunConfig.from_dict(gan).task == "gan" and not is_translation_config(gan)
    with pytest.raises(ConfigError, match="l1_weight"):         # a translation field in a GAN run's file
        RunConfig.from_dict({**gan, "train": {**gan["train"], "l1_weight": 1.0}})


@pytest.mark.parametrize("argv, words", [
    (["--preset", "pix2pix", "--metrics", "bogus"], ("--metrics bogus", "unknown translation metric")),
    (["--preset", "cyclegan", "--metrics", "none"], ("--metrics none",)),
    (["--preset", "dcgan", "--metrics", "bogus"], ("--metrics bogus", "unknown metric 'bogus'")),
    (["--preset", "dcgan", "--metrics", "none"], ("--metrics none", "leave it empty")),
])
def test_unknown_metrics_are_refused_before_any_run_directory(capsys, tmp_path, argv, words):
    assert cli([*argv, "--outdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_translation_options_show_with_a_translation_preset(capsys):
    with pytest.raises(SystemExit):
        cli(["--preset", "pix2pix", "--help"])
    shown = capsys.readouterr().out
    assert "--l1-weight" in shown and "--pool-size" in shown and "--r1-gamma" not in shown
    with pytest.raises(SystemExit):
        cli(["--help"])
    shown = " ".join(capsys.readouterr().out.split())   # argparse wraps lines at the terminal width
    assert "--r1-gamma" in shown and "--l1-weight" not in shown and "--preset pix2pix --help" in shown


@pytest.mark.slow
def test_resume_with_another_preset_is_refused(capsys, tmp_path):
    assert cli(["--preset", "dcgan", *GAN_TINY, "--kimg", "0.016", "--outdir", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    before = (run_dir / "events.jsonl").read_bytes()
    capsys.readouterr()
    assert cli(["--resume", str(run_dir), "--preset", "wgan", "--kimg", "0.032"]) == 2
    assert "--preset cannot change when resuming" in capsys.readouterr().err
    assert cli(["--resume", str(run_dir), "--config", str(run_dir / "config.json")]) == 2
    assert "--config starts a new run" in capsys.readouterr().err
    assert (run_dir / "events.jsonl").read_bytes() == before


@pytest.mark.slow
def test_an_old_translation_run_resumes_with_the_changed_settings_line(tmp_path):
    """A run written before the loops were one: "kind" instead of "task" in config.json and in the
    state's copy of it, and no gradient scalers in the state."""
    first = train(tiny(), outdir=tmp_path, progress=False)
    config = json.loads((first.run_dir / "config.json").read_text())
    config["kind"] = config.pop("task")
    for name in ("metrics_kimg", "precision", "channels_last", "compile"):   # fields the old loop did not have
        del config["train"][name]
    (first.run_dir / "config.json").write_text(json.dumps(config))
    state = load_state(first.run_dir / "state" / "last.pt")
    del state["scaler_G"], state["scaler_D"]
    save_state(first.run_dir / "state" / "last.pt", {**state, "config": json.dumps(config)})
    resumed = train(run_dir=first.run_dir, resume=True, kimg=0.032, progress=False,
                    resume_overrides={"metrics": "l1", "metrics_kimg": 0.016})
    assert resumed.state == "finished" and resumed.step == 8
    line = statuses(first.run_dir)[2]["message"]
    assert line.startswith("resumed at step 4") and "16 A and 16 B images" in line
    assert line.endswith("changed since the state was saved: train.kimg 0.016 -> 0.032, train.metrics '' -> 'l1', "
                         "train.metrics_kimg 0.0 -> 0.016"), line
    assert json.loads((first.run_dir / "config.json").read_text())["task"] == "translation"
    metrics = [e for e in read_events(first.run_dir / "events.jsonl") if e["kind"] == "metric"]
    assert [e["name"] for e in metrics] == ["translation/l1"] and metrics[0]["step"] == 8


@pytest.mark.slow
def test_a_translation_run_logs_metrics_while_it_trains(tmp_path):
    result = train(tiny(kimg=0.048, metrics="l1,psnr", metrics_kimg=0.016), outdir=tmp_path, progress=False)
    metrics = [e for e in read_events(result.run_dir / "events.jsonl") if e["kind"] == "metric"]
    assert sorted({e["step"] for e in metrics}) == [4, 8, 12]     # every 0.016 kimg, and at the end
    assert {e["name"] for e in metrics} == {"translation/l1", "translation/psnr"}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["pix2pix", "cyclegan"])
def test_translation_trains_in_mixed_precision(tmp_path, preset):
    task = Trainer(tiny(preset, precision="fp16"), tmp_path, progress=False)
    for _ in range(2):
        stats = task.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert task.scaler_G.is_enabled() and task.state_dict()["scaler_D"]["scale"] > 0
    assert all(torch.isfinite(p).all() for p in task.G.parameters())
