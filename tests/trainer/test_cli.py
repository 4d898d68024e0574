"""The command line: the real entry point in subprocesses, the subcommands' parsers and the shared
preamble in this process."""
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from trainer.checkpoint import CheckpointError
from trainer.cli import COMMANDS, DEFAULT_COMMAND, main
from trainer.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CommandFailed, guarded
from trainer.config import ConfigError
from trainer.data.datasets import DataError

CLI = [sys.executable, "-m", "trainer"]
ENTRY_POINT = Path(sys.executable).with_name("ganstudio-train")   # what `pip install` wrote for trainer.cli:main
TINY = ["--width", "8", "--max-width", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2",
        "--batch", "8", "--max-images", "64", "--grid-size", "4"]


def run(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def top_help():
    """`ganstudio-train --help` from the installed entry point, one option per line."""
    assert ENTRY_POINT.is_file(), "the ganstudio-train entry point is not installed (pip install -e .)"
    out = subprocess.run([str(ENTRY_POINT), "--help"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, COLUMNS="400"))
    assert out.returncode == 0 and not out.stderr, out.stderr
    return out.stdout


def test_help_documents_every_option(top_help):
    from trainer.config import DataConfig, ModelConfig, TrainConfig
    import dataclasses
    for cls in (DataConfig, ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in top_help


def test_help_names_every_subcommand_of_the_registry_with_its_purpose(top_help):
    listed = dict(re.findall(r"^  ([a-z-]+) +(.+)$", top_help.split("training options")[0], re.M))
    assert listed == {name: command.purpose for name, command in COMMANDS.items()}
    assert {"generate", "metrics", "invert", "encoder", "presets", "import", "render-video", "translate",
            "train"} <= set(COMMANDS)


def subcommand_help(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")   # one option per line, so a doubled default shows on one line
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_help_shows_each_default_once(name, capsys, monkeypatch):
    text = subcommand_help(name, capsys, monkeypatch)
    assert text.startswith(f"usage: ganstudio-train{'' if name == DEFAULT_COMMAND else ' ' + name}")
    assert "(default: None)" not in text
    doubled = [line for line in text.splitlines() if line.count("(default") > 1]
    assert not doubled, doubled


def test_generate_help_gives_the_studio_psi_from_its_constant(capsys, monkeypatch):
    import trainer.latents
    monkeypatch.setattr(trainer.latents, "DEFAULT_PSI", 0.55)
    line = next(line for line in subcommand_help("generate", capsys, monkeypatch).splitlines()
                if "truncation psi in W" in line)
    assert "default 0.55, the studio's" in line and line.count("default") == 1


@pytest.mark.parametrize("argv", [["generate", "--out", "g.png"], ["invert", "photo.png", "--checkpoint", "G",
                                                                     "--out", "inverted"],
                                  ["metrics", "--checkpoint", "G"]])
@pytest.mark.parametrize("device,words", [("cpu:abc", "expected cpu, cuda, cuda:N, mps or auto"),
                                          ("cuda:7", "CUDA device(s)")])
def test_a_wrong_device_is_a_one_line_usage_error(capsys, monkeypatch, tmp_path, argv, device, words):
    monkeypatch.chdir(tmp_path)   # nothing may be written, and nothing is read: the device is checked first
    assert main([*argv, "--device", device]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"ganstudio-train {argv[0]}: error: --device") and words in err, err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_a_mistyped_subcommand_is_a_usage_error_naming_the_commands(capsys):
    assert main(["generat", "--out", "g.png"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("ganstudio-train: error: unknown subcommand 'generat'") and "render-video" in err


@pytest.mark.parametrize("exc,code", [
    (ConfigError("--kimg -1: must be greater than 0"), EXIT_USAGE), (DataError("no such folder"), EXIT_USAGE),
    (CheckpointError("a pickle"), EXIT_USAGE), (ValueError("seed -5 is out of range"), EXIT_USAGE),
    (FileNotFoundError(2, "No such file or directory"), EXIT_USAGE), (CommandFailed("cannot write"), EXIT_FAILED),
    (KeyboardInterrupt(), EXIT_INTERRUPTED)])
def test_the_shared_wrapper_turns_expected_exceptions_into_one_line_and_an_exit_code(capsys, exc, code):
    def body(argv):
        raise exc
    assert guarded("invert", body)([]) == code
    err = capsys.readouterr().err
    assert err.startswith("ganstudio-train invert: error: ") and err.count("\n") == 1, err


def test_a_bug_keeps_its_traceback():
    def body(argv):
        raise ZeroDivisionError
    with pytest.raises(ZeroDivisionError):
        guarded("invert", body)([])


def test_every_subcommand_takes_its_exit_codes_and_errors_from_common():
    for name, command in COMMANDS.items():
        if name == DEFAULT_COMMAND:
            continue   # trainer/cli/train.py belongs to the training loop's refactor; main() wraps it
        module = importlib.import_module(f"trainer.cli.{command.module}")
        assert module.main.__wrapped__, f"{name}: main() is not run through common.guarded"
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert not re.search(r"^EXIT_\w+.*=", source, re.M), f"{name} defines its own exit codes"
        assert "stderr" not in inspect.getsource(module.main.__wrapped__), f"{name} prints its own errors"


@pytest.mark.slow
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


@pytest.mark.slow
def test_bad_inputs_exit_with_message(tmp_path):
    out = run(["--data", str(tmp_path / "missing"), "--outdir", str(tmp_path)])
    assert out.returncode == 2 and "neither a built-in" in out.stderr
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04N.")
    gen = run(["generate", "--checkpoint", str(tmp_path / "x.pkl"), "--out", str(tmp_path / "o.png")])
    assert gen.returncode == 2 and "pickle" in gen.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_refuses_model_changes(tmp_path):
    out = run(["--resume", str(tmp_path), "--width", "64"])
    assert out.returncode == 2 and "--width cannot change when resuming" in out.stderr


@pytest.mark.slow
def test_generate_refuses_bad_seeds_with_a_message(tmp_path):
    out = run(["generate", "--checkpoint", str(tmp_path), "--seeds", "-5", "--out", str(tmp_path / "g.png")])
    assert out.returncode == 2 and "seed -5 is out of range" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_run_on_a_relative_folder_resumes_from_anywhere_and_after_its_data_moved(tmp_path):
    """The run records its data by absolute path; data that moved is named again with --data;
    other data while the run's own is there is refused; older runs that recorded a relative path
    find it beside the folder they were started from."""
    project = tmp_path / "project"
    (project / "pics").mkdir(parents=True)
    for i in range(16):
        Image.new("RGB", (16, 16), (i * 15, 255 - i * 15, 80)).save(project / "pics" / f"{i}.png")
    small = ["--preset", "dcgan", "--resolution", "16", "--batch", "8", "--threads", "1"]
    first = run(["--data", "pics", "--outdir", "runs", "--kimg", "0.016", *small], cwd=project)
    assert first.returncode == 0, first.stderr
    run_dir = next((project / "runs").iterdir())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == str(project / "pics")
    elsewhere = run(["--resume", str(run_dir), "--kimg", "0.032"], cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    measured = run(["metrics", "--checkpoint", str(run_dir), "--metrics", "kid20", "--num-samples", "40",
                    "--threads", "1"], cwd=tmp_path)                    # the checkpoint says where its data is
    assert measured.returncode == 0 and "kid = " in measured.stdout, measured.stderr
    (project / "pics").rename(project / "moved")
    lost = run(["--resume", str(run_dir), "--kimg", "0.048"], cwd=tmp_path)
    assert lost.returncode == 2 and "not found" in lost.stderr and "--data PATH" in lost.stderr
    found = run(["--resume", str(run_dir), "--kimg", "0.048", "--data", str(project / "moved")], cwd=tmp_path)
    assert found.returncode == 0 and "reading" in found.stderr, found.stderr
    assert json.loads((run_dir / "config.json").read_text())["data"]["source"] == str(project / "moved")
    other = run(["--resume", str(run_dir), "--kimg", "0.064", "--data", "digits"], cwd=tmp_path)
    assert other.returncode == 2 and "--data cannot change when resuming" in other.stderr
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["source"] = "moved"                                    # as runs recorded it before
    (run_dir / "config.json").write_text(json.dumps(config))
    older = run(["--resume", str(run_dir), "--kimg", "0.064"], cwd=tmp_path)
    assert older.returncode == 0 and str(project / "moved") in older.stderr, older.stderr
