"""The monitor inside the studio: its tab, "open this snapshot in the explorer", `--monitor RUN`."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt   # noqa: E402

from ganstudio.widgets.main_window import MainWindow   # noqa: E402
from trainer.training.loop import train   # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import conftest
    cfg = conftest.tiny_config("dcgan", train={"kimg": 0.064, "log_every": 1})
    return train(cfg, outdir=tmp_path_factory.mktemp("runs"), progress=False).run_dir


@pytest.mark.slow
def test_exploring_a_snapshot_switches_to_the_explorer_on_that_checkpoint(qtbot, tmp_path, finished_run):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(device="cpu", settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Explorer", "Monitor"]
    window.tabs.setCurrentWidget(window.monitor)
    run = window.monitor.add_run(finished_run)
    qtbot.waitUntil(lambda: not window.monitor.is_loading() and run.state == "finished", timeout=10_000)
    window.monitor.sample_slider.setValue(1)   # the grid at step 2
    grid = window.monitor.shown_sample()
    assert grid.step == 2
    qtbot.mouseClick(window.monitor.explore_button, Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.explorer
    qtbot.waitUntil(lambda: window.info is not None and window.last_result is not None, timeout=30_000)
    assert Path(window.info.path) == run.nearest_checkpoint(2).path and window.info.step == 2
    window.close()


@pytest.mark.slow
def test_monitor_option_saves_a_screenshot_of_the_monitor(tmp_path, finished_run):
    shot = tmp_path / "monitor.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "ganstudio.app", str(finished_run), "--monitor", str(finished_run),
                          "--screenshot", str(shot), "--size", "1300x800", "--device", "cpu"],
                         capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    image = Image.open(shot).convert("RGB")
    assert image.size == (1300, 800)
    # The Monitor tab is what was saved: its run list (light) is where the Explorer has its dark
    # image view, and its plots (dark) fill the middle.
    assert min(image.getpixel((100, 120))) > 200 and max(image.getpixel((650, 400))) < 60

    missing = subprocess.run([sys.executable, "-m", "ganstudio.app", "--monitor", str(tmp_path / "nope"),
                              "--screenshot", str(tmp_path / "x.png")],
                             capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert missing.returncode != 0 and "not a run directory" in missing.stderr
