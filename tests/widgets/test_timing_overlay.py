"""View > Frame timing: the overlay of where each frame's milliseconds go (a real window, offscreen)."""
import pytest
from conftest import TIMEOUT_MS, wait_shown

from ganstudio.engine.frame_timing import STAGES


@pytest.mark.slow
def test_the_frame_timing_overlay_toggles_and_names_the_stages(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    overlay = window.timing_overlay
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    assert overlay.action in view_menu.actions()
    assert not overlay.action.isChecked() and not overlay.label.isVisible()   # off by default
    overlay.action.trigger()
    assert overlay.label.isVisible()
    window.workspace.seed += 1   # a new frame: its stages, with the paint the controller timed
    wait_shown(qtbot, window)
    qtbot.waitUntil(lambda: all(name in overlay.label.text() for name in STAGES), timeout=TIMEOUT_MS)
    # a later frame (a resize, the probe) may land between two reads: wait until the overlay has
    # caught up with the newest frame the controller timed, then check it shows that frame's figures
    clock = window.controller.paint_clock
    qtbot.waitUntil(lambda: overlay.label.text() == clock.latest.table(), timeout=TIMEOUT_MS)
    latest = clock.latest
    assert f"{latest.synthesis:6.1f} ms" in overlay.label.text() and latest.paint > 0
    overlay.action.trigger()
    assert not overlay.label.isVisible()
