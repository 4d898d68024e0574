"""File > Export > ONNX… in the real window: the dialog offers what the open model has, the file
is written on the worker and runs in onnxruntime, and a message says where it went."""
import numpy as np
import pytest

from conftest import TIMEOUT_MS, export_tiny

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[test])")


def menu_action(window, *path):
    """The QAction at a menu path such as ("File", "Export", "ONNX…"), mnemonics ignored."""
    actions = window.menuBar().actions()
    for i, text in enumerate(path):
        action = next(a for a in actions if a.text().replace("&", "") == text)
        if i < len(path) - 1:
            actions = action.menu().actions()
    return action


@pytest.mark.slow
def test_menu_exports_the_open_model_with_noise_inputs(make_window, qtbot, tmp_path):
    ckpt = export_tiny(tmp_path / "tiny.safetensors", arch="stylegan2", c_dim=3)
    window = make_window(ckpt)
    menu_action(window, "File", "Export", "ONNX…").trigger()
    dialog = window.onnx_export.dialog
    qtbot.waitUntil(dialog.isVisible, timeout=TIMEOUT_MS)
    assert dialog.path.text() == str(tmp_path / "tiny.onnx")      # beside the checkpoint by default
    assert [dialog.input.itemData(i) for i in range(dialog.input.count())] == ["z", "ws"]
    assert dialog.center.count() == 2 and not dialog.transform.isVisibleTo(dialog)   # conditional StyleGAN2
    dialog.noise.setCurrentIndex(dialog.noise.findData("input"))
    dialog.path.setText(str(tmp_path / "out" / "g.onnx"))
    dialog.accept()
    qtbot.waitUntil(lambda: window.onnx_export.last_result is not None, timeout=TIMEOUT_MS)
    out = tmp_path / "out" / "g.onnx"
    assert window.onnx_export.last_result["path"] == str(out)
    box = window.onnx_export.message_box
    assert box.isVisible() and str(out) in box.text()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[:3] == ["z", "c", "psi"] and names[3].startswith("noise_b4")
    feeds = {"z": np.zeros([2, 16], np.float32), "c": np.eye(3, dtype=np.float32)[:2], "psi": np.ones(1, np.float32)}
    feeds |= {i.name: np.zeros([1, 1, *i.shape[2:]], np.float32) for i in session.get_inputs()[3:]}
    (images,) = session.run(None, feeds)
    assert images.shape == (2, 1, 16, 16) and np.isfinite(images).all()


@pytest.mark.slow
def test_a_refused_export_says_why(make_window, qtbot, tmp_path):
    window = make_window(export_tiny(tmp_path / "tiny.safetensors"))
    (tmp_path / "blocked").write_text("a file where the folder should be")
    window.onnx_export.start(str(tmp_path / "blocked" / "g.onnx"), input="z")
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=TIMEOUT_MS)
    assert "ONNX export failed" in window.error_box.windowTitle()
    assert window.onnx_export.last_result is None
