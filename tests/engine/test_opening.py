"""What a path the user opens is, and the frame rate the status bar shows (Qt-free)."""
import pytest

from ganstudio.engine.frame_rate import FrameRate
from ganstudio.engine.opening import is_photo_file, open_kind, workspace_checkpoint


def test_open_kind_by_suffix_and_what_is_on_disk(tmp_path):
    (tmp_path / "look.json").write_text("{}")
    (tmp_path / "run").mkdir()
    assert open_kind(tmp_path / "look.json") == "workspace"
    assert open_kind(tmp_path / "missing.json") == "model"        # not a file: the loader says what is wrong
    assert open_kind(tmp_path / "face.JPG") == "photo" and is_photo_file("a/b.webp")
    assert open_kind(tmp_path / "run") == "model" and open_kind(tmp_path / "g.safetensors") == "model"
    assert open_kind(tmp_path / "net.pkl") == "model"              # refused by the loader with a message


def test_a_workspace_names_its_checkpoint_relative_to_its_folder(tmp_path):
    assert workspace_checkpoint(tmp_path / "look.json", "g.safetensors") == tmp_path / "g.safetensors"
    assert workspace_checkpoint(tmp_path / "look.json", "/abs/g.safetensors").as_posix() == "/abs/g.safetensors"


def test_frame_rate_measures_streams_and_estimates_single_changes():
    rate = FrameRate(clock=lambda: pytest.fail("times are given"))
    rate.frame_shown(0.0)
    assert rate.streaming_fps() is None and rate.describe(40.0) == "up to 25 fps"
    for k in range(1, 11):                          # 20 frames a second for half a second
        rate.frame_shown(k * 0.05)
    assert rate.describe(40.0) == "20.0 fps"
    rate.frame_shown(0.5 + 0.3)                     # a pause: a new stream starts
    assert rate.streaming_fps() is None and rate.describe(0.0) == "up to 1000000 fps"
    rate.frame_shown(0.85)
    rate.frame_shown(0.9)                           # three frames, but only 0.1 s: not yet a rate
    assert rate.streaming_fps() is None
    window = FrameRate(frames=5)
    for k in range(50):                             # the rate is of the last frames only
        window.frame_shown(k * (0.01 if k < 40 else 0.1))
    assert window.streaming_fps() == pytest.approx(10.0)
