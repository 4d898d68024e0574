"""The studio opens a model with the render settings measured on this CPU and says which (a real
window, offscreen)."""
import pytest
import torch
from conftest import TIMEOUT_MS, export_tiny, wait_shown

from ganstudio.engine import render_settings as rs


@pytest.mark.slow
def test_the_status_bar_names_the_chosen_render_settings(qtbot, make_window, tmp_path, monkeypatch):
    monkeypatch.setenv(rs.PROBE_ENV, "1")
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rs, "SLOW_FRAME_MS", 0.0)      # a tiny model, probed as if its frames were slow
    monkeypatch.setattr(rs, "PROBE_BUDGET_S", 0.2)
    monkeypatch.setattr(rs, "COMPILE", False)
    before = torch.get_num_threads()
    try:
        window = make_window(export_tiny(tmp_path / "tiny.safetensors", arch="stylegan2", resolution=32))
        qtbot.waitUntil(lambda: window.controller.render_settings != "", timeout=TIMEOUT_MS)
        wait_shown(qtbot, window)
        text = window.controller.render_settings
        label = text.split(": ", 1)[1].split(" (")[0]   # "bf16, channels-last, 1 thread"
        assert text.startswith("rendering on cpu: ") and "x fp32)" in text and "thread" in label
        assert window.statusBar().toolTip() == text and window.model_label.toolTip() == text
        assert label in window.statusBar().currentMessage() or window.statusBar().currentMessage().endswith("…")
    finally:
        torch.set_num_threads(before)
