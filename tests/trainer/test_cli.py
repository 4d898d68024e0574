"""The command line, run for real in subprocesses."""
import json
import signal
import subprocess
import sys
import time

from PIL import Image

CLI = [sys.executable, "-m", "trainer"]
TINY = ["--width", "8", "--max-width", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2",
        "--batch", "8", "--max-images", "64", "--grid-size", "4"]


def run(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, **kw)


def test_help_documents_every_option():
    from trainer.config import DataConfig, ModelConfig, TrainConfig
    import dataclasses
    out = run(["--help"])
    assert out.returncode == 0
    for cls in (DataConfig, ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in out.stdout


def test_train_then_generate(tmp_path):
    out = run(["--data", "digits", "--preset", "dcgan", "--resolution", "16", "--kimg", "0.032",
               "--outdir", str(tmp_path), *TINY])
    assert out.returncode == 0, out.stderr
    run_dir = next(tmp_path.iterdir())
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["width"] == 8 and cfg["train"]["loss"] == "nonsat" and cfg["preset"] == "dcgan"
    gen = run(["generate", "--checkpoint", str(run_dir), "--seeds", "0-8", "--out", str(tmp_path / "g.png")])
    assert gen.returncode == 0, gen.stderr
    assert Image.open(tmp_path / "g.png").size == (48, 48)


def test_bad_inputs_exit_with_message(tmp_path):
    out = run(["--data", str(tmp_path / "missing"), "--outdir", str(tmp_path)])
    assert out.returncode == 2 and "neither a built-in" in out.stderr
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04N.")
    gen = run(["generate", "--checkpoint", str(tmp_path / "x.pkl"), "--out", str(tmp_path / "o.png")])
    assert gen.returncode == 2 and "pickle" in gen.stderr


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    proc = subprocess.Popen(CLI + ["--data", "digits", "--preset", "dcgan", "--resolution", "16", "--kimg", "1000",
                                   "--outdir", str(tmp_path), *TINY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    events = None
    while time.time() < deadline:
        runs = list(tmp_path.iterdir())
        if runs and (runs[0] / "events.jsonl").exists() and "scalars" in (runs[0] / "events.jsonl").read_text():
            events = runs[0] / "events.jsonl"
            break
        time.sleep(0.2)
    assert events is not None
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped" in stdout
    last = json.loads(events.read_text().strip().splitlines()[-1])
    assert last["kind"] == "status" and last["state"] == "stopped"
    assert (events.parent / "state" / "last.pt").is_file()
    resumed = run(["--resume", str(events.parent), "--kimg", str(last["kimg"] + 0.016)])
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(events.read_text().strip().splitlines()[-1])["state"] == "finished"


def _limit_file_size(limit_bytes):
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_full_disk_fails_cleanly_and_keeps_last_checkpoint(tmp_path):
    first = run(["--data", "digits", "--preset", "dcgan", "--resolution", "16", "--kimg", "0.032",
                 "--outdir", str(tmp_path), *TINY])
    assert first.returncode == 0, first.stderr
    run_dir = next(tmp_path.iterdir())
    checkpoints = sorted((run_dir / "checkpoints").glob("*.safetensors"))
    before = {p: p.read_bytes() for p in checkpoints + [run_dir / "state" / "last.pt"]}
    # The kernel refuses any write that would make a file larger than the limit (Python ignores
    # SIGXFSZ, so the write raises OSError): a disk that fills up while the next snapshot is written.
    limit = (run_dir / "events.jsonl").stat().st_size + 16_384
    assert limit < min(len(b) for b in before.values()) * 4, "the limit must stop a snapshot"
    resumed = run(["--resume", str(run_dir), "--kimg", "0.5"], preexec_fn=_limit_file_size(limit))
    assert resumed.returncode != 0
    assert "could not write" in resumed.stderr + resumed.stdout and "--resume" in resumed.stderr + resumed.stdout
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path.name} changed"
    assert not list(run_dir.rglob("*.tmp")), "a half-written temporary file was left behind"
    status = json.loads((run_dir / "events.jsonl").read_text().strip().splitlines()[-1])
    assert status["kind"] == "status" and status["state"] == "failed"


def test_resume_refuses_model_changes(tmp_path):
    out = run(["--resume", str(tmp_path), "--width", "64"])
    assert out.returncode == 2 and "--width cannot change when resuming" in out.stderr


def test_generate_refuses_bad_seeds_with_a_message(tmp_path):
    from trainer.cli.main import parse_seeds
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    out = run(["generate", "--checkpoint", str(tmp_path), "--seeds", "-5", "--out", str(tmp_path / "g.png")])
    assert out.returncode == 2 and "seed -5 is out of range" in out.stderr and "Traceback" not in out.stderr
