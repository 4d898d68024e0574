"""The Timeline panel in the real window (offscreen): keyframes from the view, scrubbing, playback
without a backlog, export with progress and Cancel."""
import numpy as np
import pytest

from conftest import export_tiny
from conftest import TIMEOUT_MS, wait_shown
from trainer import load_generator
from trainer.film.timeline import Timeline
from trainer.film.render import TimelineRenderer
from trainer.film.video import read_video_info


@pytest.fixture
def ckpt(tmp_path):
    return export_tiny(tmp_path / "tiny.safetensors")


def two_keyframes(qtbot, window):
    panel = window.timeline_panel
    window.panels.setCurrentWidget(panel)
    window.workspace.seed = 3
    wait_shown(qtbot, window)
    qtbot.mouseClick(panel.add_button, _left())
    window.workspace.update(seed=8, psi=0.4)
    view_8 = wait_shown(qtbot, window)
    qtbot.mouseClick(panel.add_button, _left())
    return panel, view_8


def _left():
    from PySide6.QtCore import Qt
    return Qt.MouseButton.LeftButton


def wait_frame(qtbot, window, panel, frame):
    qtbot.waitUntil(lambda: panel.player._shown_frame == frame and not window.is_busy(), timeout=TIMEOUT_MS)
    return window.image_view.image.copy()


@pytest.mark.slow
def test_add_keyframes_scrub_and_play(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    panel, view_8 = two_keyframes(qtbot, window)
    line = window.workspace.timeline
    assert isinstance(line, Timeline) and len(line.keyframes) == 2
    assert [k.state.seed for k in line.keyframes] == [3, 8] and line.keyframes[1].state.psi == pytest.approx(0.4)
    assert panel.keyframe_list.count() == 2 and "seed 8" in panel.keyframe_list.item(1).text()
    # scrubbing to the last frame shows exactly what the explorer showed for that view
    last = line.frame_count - 1
    panel.player.scrub.setValue(last)
    assert np.array_equal(wait_frame(qtbot, window, panel, last), view_8)
    # a frame in between is the headless renderer's frame, byte for byte
    reference = TimelineRenderer(load_generator(ckpt), line).render_frames([5, last])
    panel.player.scrub.setValue(5)
    assert np.array_equal(wait_frame(qtbot, window, panel, 5), reference[0])
    assert "frame 6/" in panel.player.frame_label.text()
    # editing: duration and easing of the first keyframe, then reorder
    panel.keyframe_list.setCurrentRow(0)
    panel.duration.setValue(1.0)
    assert window.workspace.timeline.keyframes[0].duration == 1.0
    assert window.workspace.timeline.frame_count == 31
    panel.easing.setCurrentText("hold")
    assert window.workspace.timeline.keyframes[0].easing == "hold"
    panel.move_keyframe(1, 0)
    assert [k.state.seed for k in window.workspace.timeline.keyframes] == [8, 3]
    panel.duration.setValue(0.05)        # shorter than one frame at 30 fps? 0.05 s is 1.5 frames: allowed
    assert window.workspace.timeline.keyframes[0].duration == pytest.approx(0.05)
    # play: frames advance with the clock; only one chunk is ever in flight
    panel.loop.setChecked(True)
    assert window.workspace.timeline.loop
    player = panel.player
    shown_before = player.frames_shown
    player.play()
    assert player.is_playing and player.play_button.text() == "Pause"
    in_flight = []
    for _ in range(40):
        qtbot.wait(25)
        in_flight.append(sum(h.name == "timeline frames" for h in window.controller._handlers.values()))
    player.pause()
    assert not player.is_playing
    assert player.frames_shown - shown_before >= 5
    assert max(in_flight) <= 1, "playback queued more than one frame job"
    assert "fps" in player.fps_label.text()
    # an explorer edit takes the image view back: no timeline frame arriving late overwrites it
    player.play()
    qtbot.wait(100)
    window.workspace.seed = 21
    explorer = wait_shown(qtbot, window)
    qtbot.wait(300)
    assert not player.is_playing and np.array_equal(window.image_view.image, explorer)
    assert np.array_equal(explorer, window.last_result.image)


def test_export_while_stopped_and_cancel(qtbot, make_window, ckpt, tmp_path):
    window = make_window(ckpt)
    panel, _ = two_keyframes(qtbot, window)
    export = panel.export_box
    assert export.size.currentText().startswith("auto") and export.settings(tmp_path / "a.mp4").size is None
    export.size.setCurrentIndex(export.size.findData(1))
    assert export.settings(tmp_path / "a.mp4").size == 16                        # native: the model's own side
    export.size.setCurrentIndex(export.size.findData(2))       # 2x
    export.filter.setCurrentText("bicubic")
    out = tmp_path / "out" / "film.mp4"
    assert export.export_to(out)
    assert not export.button.isEnabled() and export.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: export.last_export == str(out), timeout=TIMEOUT_MS)
    line = window.workspace.timeline
    assert read_video_info(out) == {"frames": line.frame_count, "width": 32, "height": 32, "fps": 30.0,
                                    "codec": "h264"}
    assert "wrote" in export.message.text() and export.button.isEnabled()
    # a long export, cancelled: no file under the final name, no temporary left
    window.workspace.timeline = line.replace(keyframes=tuple(k.replace(duration=60.0) for k in line.keyframes))
    gif = tmp_path / "out" / "long.gif"
    assert export.export_to(gif)
    qtbot.waitUntil(lambda: export.progress.value() > 0, timeout=TIMEOUT_MS)
    qtbot.mouseClick(export.cancel_button, _left())
    qtbot.waitUntil(lambda: not export.busy, timeout=TIMEOUT_MS)
    assert "cancelled" in export.message.text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["film.mp4"]
    # a bad output is refused with a message before anything renders
    (tmp_path / "blocker").write_text("x")
    assert not export.export_to(tmp_path / "blocker" / "x.mp4")
    assert "cannot make the folder" in export.message.text()


def test_timeline_saved_in_workspace_and_refused_for_another_model(qtbot, make_window, ckpt, tmp_path):
    window = make_window(ckpt)
    panel, _ = two_keyframes(qtbot, window)
    panel.make_preset("class-tour")
    assert [k.state.class_index for k in window.workspace.timeline.keyframes] == [0, 1, 2]
    qtbot.waitUntil(lambda: window.workspace.timeline.checkpoint_sha256 != "", timeout=TIMEOUT_MS)
    window.save_workspace(tmp_path / "w.json")
    panel.save_timeline(tmp_path / "t.timeline.json")
    saved = window.workspace.timeline.to_dict()
    window.workspace.timeline = None
    window.open_workspace(tmp_path / "w.json")
    qtbot.waitUntil(lambda: window.workspace.timeline is not None and not window.is_busy(), timeout=TIMEOUT_MS)
    assert window.workspace.timeline.to_dict() == saved and panel.keyframe_list.count() == 3
    other = export_tiny(tmp_path / "uncond.safetensors", c_dim=0)
    window.open_checkpoint(other)
    wait_shown(qtbot, window)
    assert window.workspace.timeline is None and "does not fit" in panel.message.text()
    with pytest.raises(ValueError, match="c_dim"):
        panel.open_timeline(tmp_path / "t.timeline.json")
    assert window.workspace.timeline is None
    panel._guarded("Cannot open timeline", lambda: panel.open_timeline(tmp_path / "t.timeline.json"))
    assert "c_dim = 3" in panel.message.text()


@pytest.mark.slow
def test_sound_in_the_panel_drives_frames_and_export(qtbot, make_window, ckpt, tmp_path):
    import av
    from conftest import write_beep
    window = make_window(ckpt)
    panel, _ = two_keyframes(qtbot, window)
    beep = write_beep(tmp_path / "beep.wav", seconds=4.0, silent_until=1.0)
    panel.sound_box.gain.setValue(0.8)
    panel.sound_box.set_sound(beep)
    line = window.workspace.timeline
    assert line.audio is not None and line.audio.mappings[0].gain == pytest.approx(0.8)
    assert panel.sound_box.file_label.text() == "beep.wav"
    panel.keyframe_list.setCurrentRow(0)
    panel.duration.setValue(1.5)                      # an edit keeps the sound
    line = window.workspace.timeline
    assert line.audio is not None
    reference = TimelineRenderer(load_generator(ckpt), line).render_frames([40])
    panel.player.scrub.setValue(40)
    assert np.array_equal(wait_frame(qtbot, window, panel, 40), reference[0])
    out = tmp_path / "loud.mp4"
    assert panel.export_box.export_to(out)
    qtbot.waitUntil(lambda: not panel.export_box.busy, timeout=TIMEOUT_MS)
    with av.open(str(out)) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
    panel.sound_box.target.setCurrentIndex(1)         # a direction: the first of the Directions panel
    qtbot.waitUntil(lambda: window.workspace.timeline.audio.mappings[0].target == "direction" or
                    "directions" in panel.message.text(), timeout=TIMEOUT_MS)
    panel.sound_box.remove_button.click()
    assert window.workspace.timeline.audio is None and panel.sound_box.file_label.text() == "no sound"
