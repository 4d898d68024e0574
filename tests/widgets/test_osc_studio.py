"""Live control in the real window: a python-osc client on 127.0.0.1 drives the studio and the test
looks at the pixels (a screenshot over OSC is `ganstudio-train generate` byte for byte), a 5,000-message
flood never queues more than two renders and leaves the window responsive, a timeline played over OSC
sends loop-end pulses, and MIDI learn works in the mappings dialog with mido messages fed to it."""
import dataclasses
import os
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from PySide6.QtCore import QTimer
from pythonosc.udp_client import SimpleUDPClient

from ganstudio.engine.live import LOOP_ADDRESS
from ganstudio.engine.midi import midi_input_names
from ganstudio.engine.osc_server import OscServer
from ganstudio.widgets.live_control import MappingsDialog

from conftest import TIMEOUT_MS, export_tiny, wait_shown

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]   # tests/conftest.py


@pytest.fixture
def studio(make_window, tmp_path):
    """The window on a tiny unconditional StyleGAN2 (the settings `generate` uses by default), listening for OSC."""
    window = make_window(export_tiny(tmp_path / "tiny.safetensors", c_dim=0))
    port = window.live_control.listen(0)
    return window, SimpleUDPClient("127.0.0.1", port)


@pytest.mark.slow
def test_seed_then_screenshot_over_osc_is_generate_byte_for_byte(qtbot, studio, tmp_path):
    from trainer.cli import main as train_cli
    window, client = studio
    shot = tmp_path / "shot.png"
    client.send_message("/ganstudio/seed", 5)
    client.send_message("/ganstudio/screenshot", str(shot))
    qtbot.waitUntil(shot.is_file, timeout=TIMEOUT_MS)
    assert train_cli(["generate", "--checkpoint", str(tmp_path / "tiny.safetensors"), "--seeds", "5",
                      "--out", str(tmp_path / "generated.png"), "--threads", "1"]) == 0
    assert shot.read_bytes() == (tmp_path / "generated.png").read_bytes()
    assert window.workspace.seed == 5 and window.live_control.live.refused == 0


@pytest.mark.slow
def test_bad_messages_are_counted_in_the_status_line_and_rendering_goes_on(qtbot, studio, tmp_path):
    window, client = studio
    for address, value in (("/ganstudio/psi", float("nan")), ("/ganstudio/psi", "x"), ("/ganstudio/psi", 9.0),
                           ("/ganstudio/nope", 1), ("/ganstudio/psi", 0.3)):
        client.send_message(address, value)
    live = window.live_control.live
    qtbot.waitUntil(lambda: live.received == 5, timeout=TIMEOUT_MS)
    assert live.refused == 4 and window.workspace.psi == pytest.approx(0.3)   # OSC floats are 32-bit
    label = window.live_control.status_label
    assert label.isVisible() and "1 applied, 4 refused" in label.text() and "nope" in label.text()
    assert "nan" in label.toolTip()
    wait_shown(qtbot, window)
    assert window.controller.last_result.request_id == window.controller.requested_id


@pytest.mark.slow
def test_a_flood_of_5000_messages_queues_at_most_two_renders(qtbot, studio, capsys):
    window, client = studio
    wait_shown(qtbot, window)
    controller, worker, live = window.controller, window.worker, window.live_control.live
    queued, ticks = [], []

    def sample():   # requests sent to the worker and neither rendered nor overwritten by a newer one
        queued.append(controller.renders_requested - worker.renders_done - worker.requests_superseded
                      - controller_start)
        ticks.append(time.perf_counter())

    controller_start = controller.renders_requested - worker.renders_done - worker.requests_superseded
    timer = QTimer()
    timer.timeout.connect(sample)
    timer.start(5)
    shown = []
    window.frame_shown.connect(lambda r: shown.append(time.perf_counter()))
    def flood():   # another program: its own thread, as fast as python-osc sends
        for psi in np.linspace(-1.0, 2.0, 5000):
            client.send_message("/ganstudio/psi", float(psi))

    sender = threading.Thread(target=flood)
    sender.start()
    qtbot.waitUntil(lambda: not sender.is_alive(), timeout=TIMEOUT_MS)
    qtbot.wait(300)
    client.send_message("/ganstudio/psi", 0.5)   # UDP may drop some of a flood; the last word must arrive
    qtbot.waitUntil(lambda: window.workspace.psi == 0.5 and controller.is_current(), timeout=TIMEOUT_MS)
    qtbot.wait(200)
    timer.stop()
    assert max(queued) <= 2
    assert live.refused == 0
    gaps_ms = np.diff(ticks) * 1000
    frames_ms = np.diff(shown) * 1000
    with capsys.disabled():
        print(f"\nOSC flood: {live.received - 1} of 5000 messages received (UDP may drop), {len(shown)} frames shown, "
              f"max renders queued {max(queued)}, GUI timer gap p95 {np.percentile(gaps_ms, 95):.1f} ms, "
              f"frame time p95 {np.percentile(frames_ms, 95) if len(frames_ms) else float('nan'):.1f} ms")
    assert np.percentile(gaps_ms, 95) < 1000   # the window kept answering its timers


@pytest.mark.slow
def test_a_timeline_played_over_osc_sends_loop_end_pulses(qtbot, studio):
    window, client = studio
    listener = OscServer(0, lambda: None)
    try:
        window.live_control.send_to("127.0.0.1", listener.port)
        panel, ws = window.timeline_panel, window.workspace
        panel.add_current_view()
        ws.seed = 3
        panel.add_current_view()
        keys = tuple(dataclasses.replace(k, duration=0.25) for k in ws.timeline.keyframes)
        ws.timeline = dataclasses.replace(ws.timeline, keyframes=keys, loop=True, fps=12.0)
        client.send_message("/ganstudio/timeline/position", 0.0)
        client.send_message("/ganstudio/timeline/play", 1)
        got = []
        qtbot.waitUntil(lambda: got.extend(listener.take()) or any(a == LOOP_ADDRESS for a, _ in got),
                        timeout=TIMEOUT_MS)
        assert panel.player.is_playing
        client.send_message("/ganstudio/timeline/play", 0)
        qtbot.waitUntil(lambda: not panel.player.is_playing, timeout=TIMEOUT_MS)
        assert any(address == "/ganstudio/frame" for address, _ in got)
    finally:
        listener.close()


@pytest.mark.slow
def test_midi_learn_in_the_mappings_dialog(qtbot, make_window, tmp_path):
    window = make_window(export_tiny(tmp_path / "tiny.safetensors"))
    ui = window.live_control
    dialog = MappingsDialog(ui, window)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.target.setCurrentText("psi")
    dialog.learn_button.click()
    assert "Learning psi" in dialog.learn_button.text()
    ui.midi_message.emit(mido.Message("control_change", channel=0, control=21, value=10))   # as a port's thread does
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=TIMEOUT_MS)
    assert dialog.table.item(0, 0).text() == "psi" and dialog.table.item(0, 1).text() == "cc 21 ch 1"
    before = wait_shown(qtbot, window)
    dialog.table.item(0, 3).setText("1.5")              # edit the range's top
    ui.midi_message.emit(mido.Message("control_change", channel=0, control=21, value=127))
    qtbot.waitUntil(lambda: window.workspace.psi == 1.5, timeout=TIMEOUT_MS)
    assert not np.array_equal(wait_shown(qtbot, window), before)     # the knob moved the picture
    dialog.table.item(0, 2).setText("nan")               # refused, and shown as before
    assert dialog.table.item(0, 2).text() == "0" and "not changed" in dialog.message.text()
    window.save_workspace(tmp_path / "ws.json")
    other = make_window()
    other.open_workspace(tmp_path / "ws.json")
    qtbot.waitUntil(lambda: other.workspace.midi_mappings == window.workspace.midi_mappings, timeout=TIMEOUT_MS)


def test_without_a_midi_system_the_menu_says_so(make_window):
    window = make_window()
    ui = window.live_control
    ui._fill_midi_menu()
    texts = [a.text() for a in ui.midi_menu.actions()]
    names, problem = midi_input_names()
    if names:
        pytest.skip("this machine has MIDI ports")
    assert texts == [problem or "no MIDI input ports"] and not ui.midi_menu.actions()[0].isEnabled()


def readme_osc_script() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("Driving the studio over OSC")[1].split("```python\n")[1].split("```")[0]


@pytest.mark.slow   # the README's script as written: a real studio process for about a minute
def test_the_readme_script_drives_the_studio_over_osc(tmp_path):
    """Only the port (a free one), the start-up wait (a loaded CPU) and the way
    `ganstudio` is started (this interpreter) change."""
    import socket
    import subprocess
    import sys
    from PIL import Image
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = readme_osc_script()
    for old, new in (('"9000"', f'"{port}"'), (", 9000)", f", {port})"),
                     ("time.sleep(20)", "time.sleep(45)"), ('["ganstudio", ', '[sys.executable, "-m", "ganstudio", ')):
        assert old in script, old
        script = script.replace(old, new)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", "import sys\n" + script], env=env, cwd=tmp_path, timeout=180, check=True)
    shots = {name: np.asarray(Image.open(tmp_path / f"{name}.png")) for name in ("start", "moved", "preset", "film")}
    np.testing.assert_array_equal(shots["preset"], shots["start"])   # back on the preset, exactly
    assert not np.array_equal(shots["moved"], shots["start"]) and not np.array_equal(shots["film"], shots["moved"])
