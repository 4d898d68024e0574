"""The Monitor's New-run form offscreen, with real widgets and real files: a model to fine-tune from
fills the fine-tuning defaults, and "Make a dataset" runs the real dataset tool (a subprocess) with
progress and cancel, then fills the dataset field with its zip."""
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QTimer   # noqa: E402
from PySide6.QtWidgets import QApplication   # noqa: E402

from conftest import export_tiny   # noqa: E402
from ganstudio.widgets.dataset_dialog import DatasetDialog   # noqa: E402
from ganstudio.widgets.monitor_control import NewRunDialog   # noqa: E402

TOOL_TIMEOUT_MS = 90_000   # a python start-up, on a CPU shared with others


@pytest.fixture
def form(qtbot, tmp_path):
    dialog = NewRunDialog(outdir=str(tmp_path / "runs"))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def pictures(folder, count, size=64, seed=0, suffix=".png"):
    """`count` different pictures (coarse random blocks), none a near duplicate of another."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((size // 4, size // 4, 1), np.uint8))).save(folder / f"{i:03d}{suffix}")
    return folder


def test_choosing_a_model_fills_the_fine_tuning_defaults_and_clearing_it_restores_scratch(form, tmp_path):
    assert form.request().init == "" and not form.ada.isChecked() and form.freeze_d.value() == 0
    ckpt = export_tiny(tmp_path / "model.safetensors", arch="stylegan2", c_dim=3, resolution=16)
    form.init.setText(str(ckpt))
    assert form.init_note.isVisible() and "stylegan2, 16 px, 3 classes" in form.init_note.text()
    assert form.preset.currentText() == "stylegan2-cond" and form.resolution.value() == 16
    args = form.request().arguments()
    assert args[args.index("--init") + 1] == str(ckpt.resolve())
    assert args[args.index("--augment") + 1] == "ada" and args[args.index("--freeze-d") + 1] == "1"
    form.freeze_d.setValue(0)   # the user's choice wins over the default
    assert "--freeze-d" not in form.request().arguments()
    form.init.setText("")
    assert not form.init_note.isVisible() and not form.ada.isChecked() and form.request().init == ""
    form.init.setText(str(tmp_path / "photos.zip"))
    assert "not a run directory" in form.init_note.text() and not form.ada.isChecked()


def wait_for_the_tool(qtbot, dialog):
    qtbot.waitUntil(lambda: not dialog.timer.isActive(), timeout=TOOL_TIMEOUT_MS)


@pytest.mark.slow
def test_make_a_dataset_runs_the_tool_and_fills_the_dataset_field(qtbot, form, tmp_path):
    folder = pictures(tmp_path / "photos" / "cats", 3)
    pictures(tmp_path / "photos" / "dogs", 2, seed=1)
    Image.open(folder / "000.png").save(folder / "copy.png")   # an exact duplicate, for the report
    form.dataset.setCurrentText(str(tmp_path / "photos"))
    seen = {}

    def drive_the_dialog():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, DatasetDialog):
            QTimer.singleShot(50, drive_the_dialog)
            return
        seen["out"] = dialog.out.text()
        dialog.resolution.setValue(16)
        qtbot.mouseClick(dialog.make_button, Qt.MouseButton.LeftButton)
        wait_for_the_tool(qtbot, dialog)
        seen["status"], seen["console"] = dialog.status.text(), dialog.console.toPlainText()
        seen["progress"] = (dialog.progress.value(), dialog.progress.maximum())
        if dialog.use_button.isEnabled():
            qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
        else:
            dialog.reject()

    QTimer.singleShot(0, drive_the_dialog)
    qtbot.mouseClick(form.make_dataset_button, Qt.MouseButton.LeftButton)
    zip_path = tmp_path / "photos.zip"
    assert seen["out"] == str(zip_path), seen
    assert seen["status"].startswith("made") and seen["progress"] == (1, 1), seen
    assert "5 of 6 pictures" in seen["console"] and re.search(r"exact duplicate +1 ", seen["console"]), seen["console"]
    assert "classes: cats 3, dogs 2" in seen["console"]
    assert form.dataset.currentText() == str(zip_path) and zip_path.is_file()
    assert (tmp_path / "photos-sheet.png").is_file()


@pytest.mark.slow
def test_cancel_stops_the_tool_and_leaves_no_zip(qtbot, tmp_path):
    pictures(tmp_path / "many", 300, size=512, suffix=".jpg")   # long enough to cancel part-way on any machine
    dialog = DatasetDialog(source=str(tmp_path / "many"))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.resolution.setValue(256)
    qtbot.mouseClick(dialog.make_button, Qt.MouseButton.LeftButton)
    assert dialog.cancel_button.text() == "Cancel" and not dialog.make_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 300 and dialog.progress.value() >= 1, timeout=TOOL_TIMEOUT_MS)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_the_tool(qtbot, dialog)
    assert dialog.job.process.exit_code == 130 and dialog.status.text() == "cancelled: no zip was written"
    assert not dialog.use_button.isEnabled() and dialog.cancel_button.text() == "Close"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many"]   # no zip, no temporary file, no sheet
