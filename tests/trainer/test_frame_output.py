"""Frame output never removes or overwrites what the user had: a PNG sequence whose folder name
is taken goes to a new folder beside it, and the command says where."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import export_tiny
from trainer import load_generator
from trainer.film.render import TimelineRenderer
from trainer.film.timeline import Keyframe, Timeline
from trainer.film.video import ExportSettings, export_timeline
from trainer.latents import LatentState

CLI = [sys.executable, "-m", "trainer"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


def short_film(G):
    keys = (Keyframe(LatentState(seed=0, class_index=0), 0.2, "linear"), Keyframe(LatentState(seed=1, class_index=0)))
    return TimelineRenderer(G, Timeline(keys, fps=10))


def test_frames_into_a_taken_folder_go_beside_it(tiny_path, tmp_path):
    G = load_generator(tiny_path)
    folder = tmp_path / "film"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "frame-000000.png").write_bytes(b"not from this export")
    report = export_timeline(short_film(G), ExportSettings(str(folder)))
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "frame-000000.png").read_bytes() == b"not from this export"
    assert report.path == str(tmp_path / "film-2")
    assert len(list((tmp_path / "film-2").glob("frame-*.png"))) == report.frames > 0
    again = export_timeline(short_film(G), ExportSettings(str(tmp_path / "film.png")))   # film.png means film/
    assert again.path == str(tmp_path / "film-3")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("film")) == ["film", "film-2", "film-3"]


@pytest.mark.slow
def test_png_out_named_after_a_run_directory_keeps_the_run(tiny_path, tmp_path):
    run = tmp_path / "myrun"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    out = subprocess.run(CLI + ["render-video", "--checkpoint", str(tiny_path), "--preset", "seed-walk", "--seeds", "0-1",
                                "--seconds-per-key", "0.2", "--out", str(tmp_path / "myrun.png")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (run / "config.json").read_text() == "{}" and (run / "checkpoints").is_dir()
    assert not list(run.glob("frame-*.png"))
    assert str(tmp_path / "myrun-2") in out.stdout
    assert list((tmp_path / "myrun-2").glob("frame-*.png"))


def test_a_timeline_file_names_its_model_and_sound_relative_to_itself(tmp_path, monkeypatch):
    """What the studio's Open timeline and `render-video` both read: a relative checkpoint or sound
    path in the file means beside the file, wherever the command runs."""
    from trainer.film.audio import AudioTrack
    (tmp_path / "film").mkdir()
    line = Timeline((Keyframe(LatentState(seed=0)),), checkpoint="model.safetensors",
                    audio=AudioTrack("sound/song.wav"))
    line.save(tmp_path / "film" / "a.timeline.json")
    monkeypatch.chdir(tmp_path)
    loaded = Timeline.load("film/a.timeline.json").located("film/a.timeline.json")
    assert Path(loaded.checkpoint).resolve() == tmp_path / "film" / "model.safetensors"
    assert Path(loaded.audio.path).resolve() == tmp_path / "film" / "sound" / "song.wav"
    assert Timeline.load("film/a.timeline.json").checkpoint == "model.safetensors"   # the file as written
    absolute = Timeline.load(tmp_path / "film" / "a.timeline.json").located(tmp_path / "film" / "a.timeline.json")
    assert absolute.checkpoint == str(tmp_path / "film" / "model.safetensors")
    assert absolute.audio.path == str(tmp_path / "film" / "sound" / "song.wav")
