"""Checkpoint round-trip, exact resume, and the files a loader must refuse."""
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from trainer import CheckpointError, load_generator
from trainer.checkpoint import load_state, read_checkpoint
from trainer.events import read_events
from trainer.training.loop import train
from conftest import assert_resume_reproduces, export_tiny


def test_a_run_directory_or_its_checkpoints_folder_opens_the_newest(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for step in (900, 10000, 2000):   # unpadded names: the newest by step is the first by text
        export_tiny(folder / f"step-{step}.safetensors", step=step)
    for path in (tmp_path / "run", folder):
        assert load_generator(path).checkpoint_info["step"] == 10000
    with pytest.raises(CheckpointError, match="no checkpoints yet.*run directory or a .safetensors file"):
        load_generator(tmp_path)


@pytest.mark.slow
def test_round_trip_and_run_layout(tiny, tmp_path):
    result = train(tiny("stylegan2-cond"), outdir=tmp_path, progress=False)
    run = result.run_dir
    assert result.state == "finished" and (run / "config.json").is_file()
    ckpts = sorted((run / "checkpoints").glob("step-*.safetensors"))
    assert len(ckpts) == 2 and (run / "state" / "last.pt").is_file()
    G = load_generator(run)  # a run directory opens its newest checkpoint
    assert G.checkpoint_info["path"] == str(ckpts[-1])
    assert G.c_dim == 10 and G.num_ws == 6 and not G.training
    assert G.checkpoint_info["dataset"]["class_names"][3] == "3"
    _, meta = read_checkpoint(ckpts[-1])
    assert meta["format"] == "ganstudio.generator" and meta["arch"] == "stylegan2"
    state = load_state(run / "state" / "last.pt")
    z = torch.randn(2, 16)
    c = torch.tensor([1, 2])
    expected = state["G_ema"]
    from trainer.models import build_generator
    from trainer.config import RunConfig
    cfg = RunConfig.from_json((run / "config.json").read_text())
    G2 = build_generator(cfg.model).eval()
    G2.load_state_dict(expected)
    with torch.no_grad():   # both on the same (rendering) path: it rounds differently from the training path
        assert torch.equal(G(z, c), G2(z, c))
    kinds = [e["kind"] for e in read_events(run / "events.jsonl")]
    assert kinds[0] == "status" and kinds[-1] == "status"
    assert {"scalars", "samples", "checkpoint"} <= set(kinds)
    scalars = [e for e in read_events(run / "events.jsonl") if e["kind"] == "scalars"]
    assert {"loss/D", "loss/G", "D/real", "D/fake", "lr/G", "lr/D", "speed/img_s"} <= set(scalars[0]["values"])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["dcgan", "stylegan2", "wgan-gp"])
def test_resume_reproduces_uninterrupted_run(preset, tiny, tmp_path):
    cfg_full = tiny(preset, model={"d_norm": "layer"} if preset == "wgan-gp" else {},
                    train={"kimg": 0.08, "snapshot_kimg": 0.04, "sample_kimg": 0.04, "r1_gamma": 1.0,
                           "r1_every": 2, "augment": "color,translation,cutout"}, data={"xflip": True})
    full = train(cfg_full, outdir=tmp_path / "a", progress=False)
    cfg_half = tiny(preset, model={"d_norm": "layer"} if preset == "wgan-gp" else {},
                    train={"kimg": 0.04, "snapshot_kimg": 0.04, "sample_kimg": 0.04, "r1_gamma": 1.0,
                           "r1_every": 2, "augment": "color,translation,cutout"}, data={"xflip": True})
    half = train(cfg_half, outdir=tmp_path / "b", progress=False)
    assert_resume_reproduces(full, half, cfg_full.train.kimg)


@pytest.mark.slow
def test_nan_stops_run_and_keeps_last_good_checkpoint(tiny, tmp_path):
    from trainer.training.loop import RunLoop
    first = train(tiny("wgan"), outdir=tmp_path, progress=False)
    good = sorted((first.run_dir / "checkpoints").glob("*.safetensors"))
    good_bytes = good[-1].read_bytes()
    # Continue the same run with a learning rate that makes the critic blow up for real.
    loop = RunLoop(tiny("wgan", train={"kimg": 2.0, "clip": 1e30}), first.run_dir, resume=True, progress=False)
    for group in loop.task.opt_D.param_groups + loop.task.opt_G.param_groups:
        group["lr"] = 1e30
    result = loop.run()
    assert result.state == "failed"
    assert any(s in result.message for s in ("nan", "inf", "exploded", "not finite"))
    status = [e for e in read_events(result.run_dir / "events.jsonl") if e["kind"] == "status"][-1]
    assert status["state"] == "failed" and "last good checkpoint" in status["message"]
    assert sorted((first.run_dir / "checkpoints").glob("*.safetensors")) == good
    assert good[-1].read_bytes() == good_bytes
    G = load_generator(result.run_dir)  # what is on disk still loads and is finite
    assert all(torch.isfinite(p).all() for p in G.parameters())


@pytest.mark.slow
def test_stop_request_saves_and_exits_cleanly(tiny, tmp_path):
    import threading
    stop = threading.Event()
    stop.set()
    result = train(tiny("dcgan", train={"kimg": 10}), outdir=tmp_path, progress=False, stop_event=stop)
    assert result.state == "stopped"
    assert (result.run_dir / "state" / "last.pt").is_file()
    assert load_generator(result.run_dir) is not None


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    for name in ("evil.pkl", "evil.safetensors"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(_RunsCode(marker)))
        with pytest.raises(CheckpointError, match="pickle"):
            load_generator(path)
    torch.save({"x": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="PyTorch"):
        load_generator(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="resume state"):
        load_state(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.slow
def test_broken_checkpoints_give_clear_errors(tiny, tmp_path):
    result = train(tiny("dcgan"), outdir=tmp_path, progress=False)
    good = sorted((result.run_dir / "checkpoints").glob("*.safetensors"))[-1]
    data = good.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(tmp_path / "truncated.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "other"})
    with pytest.raises(CheckpointError, match="not a GAN Studio generator"):
        load_generator(tmp_path / "foreign.safetensors")
    tensors, meta = read_checkpoint(good)
    save_file(tensors, str(tmp_path / "arch.safetensors"), metadata={**meta, "arch": "biggan"})
    with pytest.raises(CheckpointError, match="biggan"):
        load_generator(tmp_path / "arch.safetensors")
    missing = dict(tensors)
    missing.pop(sorted(missing)[0])
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="missing tensors"):
        load_generator(tmp_path / "missing.safetensors")
    (tmp_path / "empty_run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_generator(tmp_path / "empty_run")


def test_atomic_write_keeps_usual_file_mode(tmp_path):
    import os
    from trainer.checkpoint import atomic_write
    umask = os.umask(0)
    os.umask(umask)
    atomic_write(tmp_path / "f.bin", lambda tmp: open(tmp, "wb").write(b"x"))
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.slow
def test_resume_may_change_schedule_but_not_training(tiny, tmp_path):
    first = train(tiny("dcgan"), outdir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="--g-lr cannot change when resuming"):
        train(run_dir=first.run_dir, resume=True, resume_overrides={"g_lr": 1.0}, progress=False)
    result = train(run_dir=first.run_dir, resume=True, kimg=0.064, progress=False,
                   resume_overrides={"sample_kimg": 0.032, "log_every": 2})
    assert result.state == "finished"
    saved = json.loads((first.run_dir / "config.json").read_text())["train"]
    assert saved["sample_kimg"] == 0.032 and saved["log_every"] == 2 and saved["kimg"] == 0.064
    # a hand-edited config.json (a remedy switched on mid-run) continues too, and the log says what changed
    config = json.loads((first.run_dir / "config.json").read_text())
    config["train"]["mode_seeking"] = 0.3
    config["train"]["g_lr"] = config["train"]["g_lr"] / 4   # a lower rate to polish: it must take effect
    (first.run_dir / "config.json").write_text(json.dumps(config))
    train(run_dir=first.run_dir, resume=True, kimg=0.096, progress=False)
    from trainer.checkpoint import load_state
    state = load_state(first.run_dir / "state" / "last.pt")
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(config["train"]["g_lr"])
    resumes = [e["message"] for e in map(json.loads, (first.run_dir / "events.jsonl").read_text().splitlines())
               if e.get("message", "").startswith("resumed")]
    assert "train.log_every 1 -> 2" in resumes[0] and "train.sample_kimg" in resumes[0], resumes[0]
    assert "train.mode_seeking 0.0 -> 0.3" in resumes[1] and "train.kimg 0.064 -> 0.096" in resumes[1], resumes[1]
    assert "log_every" not in resumes[1]


@pytest.mark.parametrize("first_byte", [0x80, ord("(")])  # pickle openers a multiple of 8 (header padding)
def test_safetensors_whose_header_length_looks_like_a_pickle_opens(first_byte, tmp_path):
    """The header length's low byte is arbitrary; a checkpoint must not be taken for a pickle by it."""
    from trainer.checkpoint import export_generator
    from trainer.config import ModelConfig
    from trainer.models import build_generator
    cfg = ModelConfig(arch="mlp", z_dim=4, hidden=8, depth=1, img_channels=2)
    G = build_generator(cfg)
    path = tmp_path / "g.safetensors"
    for pad in range(256):
        export_generator(G, path, cfg, step=1, kimg=0.0, dataset={"name": "ring8", "pad": "x" * pad})
        if path.read_bytes()[0] == first_byte:
            break
    else:
        pytest.fail("no padding gave the wanted first byte")
    assert load_generator(path).z_dim == 4


@pytest.mark.slow
def test_an_unexpected_error_ends_the_log_as_failed(tiny, tmp_path):
    """Any exception (a CUDA out-of-memory error here, injected: this machine has no GPU) leaves a
    `failed` status line, so the monitor does not show a dead run as running, and still rises."""
    from trainer.training.gan import GanTask
    from trainer.training.loop import RunLoop, new_run_dir

    class OutOfMemory(GanTask):
        def train_step(self):
            if self.step >= 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().train_step()

    cfg = tiny("dcgan")
    loop = RunLoop(cfg, new_run_dir(tmp_path, cfg), progress=False, task_class=OutOfMemory)
    with pytest.raises(RuntimeError, match="out of memory"):
        loop.run()
    last = read_events(loop.run_dir / "events.jsonl")[-1]
    assert last["kind"] == "status" and last["state"] == "failed" and "out of memory" in last["message"]
    assert loop.writer._file.closed


# the demo shipped until 2026-12-07 (the compact model), kept as a user's old checkpoint would be
DEMO = __import__("pathlib").Path(__file__).resolve().parent / "data" / "old-demo-compact-step-020209.safetensors"


@pytest.mark.slow
def test_bundled_demo_opens_as_the_compact_model_and_renders_the_same_pixels():
    """The demo was written with arch "stylegan2" and the compact model's config before the exact
    StyleGAN2 took that name: it opens as stylegan2-compact and renders what it rendered before
    (tests/trainer/data/demo_golden.npz was made from the code of that time)."""
    import numpy as np
    from trainer.latents import seed_to_z
    from trainer.models.stylegan2 import StyleGAN2Generator
    _, meta = read_checkpoint(DEMO)
    assert meta["arch"] == "stylegan2" and "width" in json.loads(meta["config"])
    G = load_generator(DEMO)
    assert type(G) is StyleGAN2Generator and G.checkpoint_info["config"]["arch"] == "stylegan2-compact"
    golden = np.load(DEMO.parents[3] / "tests" / "trainer" / "data" / "demo_golden.npz")
    z = torch.from_numpy(np.stack([seed_to_z(int(s), G.z_dim) for s in golden["seeds"]])).float()
    c = torch.from_numpy(golden["classes"])
    with torch.no_grad():
        images = torch.cat([G(z, c, truncation_psi=float(psi)) for psi in golden["psi"]])
        tensors, _ = read_checkpoint(DEMO)
        cfg = json.loads(meta["config"])
        same = StyleGAN2Generator(cfg["z_dim"], cfg["c_dim"], cfg["w_dim"], cfg["img_resolution"], cfg["img_channels"],
                                  cfg["width"], cfg["max_width"], cfg["mapping_layers"])
        same.load_state_dict(tensors)
        direct = torch.cat([same.eval()(z, c, truncation_psi=float(psi)) for psi in golden["psi"]])
    assert torch.equal(images, direct)
    # rounding only: thread counts, and the CPU's kernels (an AMX / AVX512-FP16 Xeon differs from the
    # machine that wrote the golden file by 3.1e-5 at 1 and 2 threads); 1e-4 is 0.013 of a uint8 level
    assert np.abs(images.numpy() - golden["images"]).max() < 1e-4


def _rewritten(path, out, **metadata):
    """A copy of a checkpoint with some metadata replaced (the tensors and their checksum unchanged)."""
    from trainer.files import write_safetensors
    tensors, meta = read_checkpoint(path)
    write_safetensors(out, tensors, {**meta, **metadata})
    return out


@pytest.mark.slow
def test_checkpoints_written_under_older_names_open(tmp_path):
    from conftest import export_tiny
    # an NVlabs import of an earlier version: arch and config arch "stylegan2-nvlabs"
    exact = export_tiny(tmp_path / "exact.safetensors", arch="stylegan2", c_dim=0)
    _, meta = read_checkpoint(exact)
    old_config = json.dumps({**json.loads(meta["config"]), "arch": "stylegan2-nvlabs"})
    old = load_generator(_rewritten(exact, tmp_path / "imported.safetensors", arch="stylegan2-nvlabs",
                                    config=old_config, source="nvlabs-pkl"))
    assert type(old).__name__ == "NVlabsGenerator" and old.checkpoint_info["config"]["arch"] == "stylegan2"
    z = torch.randn(2, 16)
    assert torch.equal(old(z), load_generator(exact)(z))
    # a user's compact checkpoint of an earlier version: arch "stylegan2", no channel_base in its config
    compact = export_tiny(tmp_path / "compact.safetensors", c_dim=0)
    _, meta = read_checkpoint(compact)
    config = {k: v for k, v in json.loads(meta["config"]).items()
              if k not in ("cfg", "channel_base", "channel_max", "magnitude_ema_beta")}
    older = load_generator(_rewritten(compact, tmp_path / "older.safetensors", arch="stylegan2",
                                      config=json.dumps({**config, "arch": "stylegan2"})))
    assert type(older).__name__ == "StyleGAN2Generator" and torch.equal(older(z), load_generator(compact)(z))
    # and such a run's config.json still describes the compact model (so the run resumes as it was)
    from trainer.config import RunConfig
    run_config = json.loads((DEMO.parent / "old-demo-compact-config.json").read_text())   # its run's config.json
    assert RunConfig.from_dict(run_config).model.arch == "stylegan2-compact"
