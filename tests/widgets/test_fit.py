"""Every panel fits the window sizes people use (1024x700 and 1920x1080): no text cut off by its
widget, no sideways scroll bar, and the Monitor shows only plots that have data. The walk reads
what is on screen: each visible label, button, check box and combo box's text width (QFontMetrics)
against the widget's width, each table column's contents against the column's width."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (QAbstractScrollArea, QApplication, QCheckBox, QComboBox, QLabel,
                               QPushButton, QScrollArea, QTreeWidget, QWidget)

from conftest import TIMEOUT_MS, export_tiny, tiny_config, wait_shown

ROOT = Path(__file__).resolve().parents[2]
SIZES = ((1024, 700), (1920, 1080))
LATENT_PANELS = ("latent", "truncation", "mixing", "directions", "timeline", "invert")


def plain_text(text: str) -> str:
    if re.search(r"<[a-zA-Z/][^>]*>|&\w+;", text):   # rich text: measure what it draws, not its tags
        document = QTextDocument()
        document.setHtml(text)
        return document.toPlainText()
    return text.replace("&&", "&")


def text_width(widget: QWidget, text: str) -> int:
    metrics = widget.fontMetrics()
    return max((metrics.horizontalAdvance(line) for line in plain_text(text).splitlines()), default=0)


def clipped_widgets(root: QWidget) -> list[str]:
    """What a user would see cut off under `root`: 'Class: text (needs N px, has M)' per widget,
    and every visible sideways scroll bar."""
    problems = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root) and widget is not root or widget.width() <= 1:
            continue
        name = type(widget).__name__
        need, has, text = 0, widget.width(), ""
        if isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull():
            text = widget.text()
            has = widget.contentsRect().width() - 2 * max(widget.margin(), 0) - max(widget.indent(), 0)
            if widget.wordWrap():   # wrapped: clipped when the lines it needs are taller than it is
                if widget.heightForWidth(widget.width()) > widget.height() + 2:
                    problems.append(f"{name} {plain_text(text)[:60]!r}: needs {widget.heightForWidth(widget.width())} "
                                    f"px high, has {widget.height()}")
                longest = max((widget.fontMetrics().horizontalAdvance(word)
                               for word in plain_text(text).split()), default=0)
                need = longest
            else:
                need = text_width(widget, text)
        elif isinstance(widget, QCheckBox) and widget.text():
            text, need = widget.text(), widget.sizeHint().width()
        elif isinstance(widget, QPushButton) and widget.text():
            text, need = widget.text(), text_width(widget, widget.text()) + 8
        elif isinstance(widget, QComboBox) and widget.currentText():
            text, need = widget.currentText(), text_width(widget, widget.currentText()) + 24
        if need > has:
            problems.append(f"{name} {plain_text(text)[:60]!r}: needs {need} px, has {has}")
        if isinstance(widget, QAbstractScrollArea) and widget.horizontalScrollBar().isVisible():
            problems.append(f"{name} {widget.objectName() or ''}: scrolls sideways")
        if isinstance(widget, QScrollArea) and widget.widget() is not None and \
                widget.widget().minimumSizeHint().width() > widget.viewport().width() + 1:
            problems.append(f"{name}: content needs {widget.widget().minimumSizeHint().width()} px, "
                            f"has {widget.viewport().width()}")
        right = widget.mapTo(root, widget.rect().topRight()).x() if widget is not root else 0
        if text and right > root.width() + 1:
            problems.append(f"{name} {plain_text(text)[:60]!r}: runs past the right edge ({right} > {root.width()})")
        if isinstance(widget, QTreeWidget):
            problems += clipped_columns(widget)
    return problems


def clipped_columns(tree: QTreeWidget) -> list[str]:
    """Columns narrower than Qt's own measure of their cells (what it elides, "20209" -> "2…9")."""
    problems = []
    for column in range(tree.columnCount()):
        need, has = tree.sizeHintForColumn(column), tree.columnWidth(column)
        if not tree.isColumnHidden(column) and need > has:
            texts = [tree.topLevelItem(row).text(column) for row in range(tree.topLevelItemCount())]
            problems.append(f"{tree.headerItem().text(column)} column: {texts} needs {need} px, has {has}")
    return problems


def settle(qtbot, ms: int = 150) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)


def walk_explorer(qtbot, window, panels) -> dict[str, list[str]]:
    """{panel: problems} for each named panel of the Explorer tab, shown in turn."""
    from ganstudio.widgets.main_window import PANELS
    window.tabs.setCurrentWidget(window.explorer)
    found = {}
    for name in panels:
        window.panels.setCurrentIndex(PANELS.index(name))
        settle(qtbot)
        found[name] = clipped_widgets(window.panels.currentWidget()) + clipped_widgets(window.statusBar())
    return found


def sized_window(make_window, size, path=None):
    window = make_window(path)
    window.resize(*size)
    settle_size(window, size)
    return window


def settle_size(window, size) -> None:
    QApplication.processEvents()
    assert (window.width(), window.height()) == size   # the window's minimum size fits the smaller one
    if os.environ.get("QT_SCALE_FACTOR") == "2":   # run by test_panels_fit_at_twice_the_pixel_ratio
        assert window.devicePixelRatio() == 2


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_latent_panels_fit(qtbot, make_window, tmp_path, size):
    ckpt = export_tiny(tmp_path / "tiny.safetensors")
    window = sized_window(make_window, size, ckpt)
    qtbot.waitUntil(lambda: bool(window.workspace.directions) and not window.is_busy(), timeout=TIMEOUT_MS)
    wait_shown(qtbot, window)
    problems = walk_explorer(qtbot, window, LATENT_PANELS)
    assert not any(problems.values()), problems
    message = "projecting step 40/100: loss 0.03993, PSNR 20.01 dB, SSIM 0.599 " * 3
    window._show_progress(0.4, message)   # a long job's line ends in "…" where the bar has no more room
    settle(qtbot, 50)
    shown, bar = window.statusBar().currentMessage(), window.statusBar()
    assert shown.endswith("…") and bar.fontMetrics().horizontalAdvance(shown) < bar.width() - window.model_label.width()
    assert window.panels.width() >= 470 and window.image_view.width() >= 360


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_latent_panels_fit_a_stylegan3_model_with_its_move_and_rotate_controls(qtbot, make_window, tmp_path, size):
    import torch
    torch.set_num_threads(1)
    ckpt = export_tiny(tmp_path / "sg3.safetensors", arch="stylegan3-t")
    window = sized_window(make_window, size, ckpt)
    problems = walk_explorer(qtbot, window, ("latent", "truncation"))
    assert window.latent_panel.transform_box.isVisibleTo(window.latent_panel)   # the sliders, drag pad and animation are walked too
    assert not any(problems.values()), problems


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_translate_panel_fits(qtbot, make_window, pix2pix_run, size):
    window = sized_window(make_window, size)
    window.open_checkpoint(pix2pix_run)
    qtbot.waitUntil(lambda: window.translate_panel.view is not None and not window.is_busy(), timeout=TIMEOUT_MS)
    problems = walk_explorer(qtbot, window, ("translate",))
    assert not problems["translate"], problems
    assert window.translate_panel.direction.currentText().endswith(")")   # the whole direction, domains too


def monitor_problems(qtbot, window, run_dir) -> tuple[list[str], list[str]]:
    """Open `run_dir` in the Monitor tab; -> (clipped widgets, keys of the plots shown)."""
    window.tabs.setCurrentWidget(window.monitor)
    run = window.monitor.add_run(run_dir)
    qtbot.waitUntil(lambda: not window.monitor.is_loading() and run.last_step > 0, timeout=TIMEOUT_MS)
    settle(qtbot, 300)
    return clipped_widgets(window.monitor), window.monitor.plots.shown_plots()


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    from trainer.training.loop import train
    return train(tiny_config("dcgan"), outdir=tmp_path_factory.mktemp("runs"), progress=False).run_dir


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    from trainer.training.loop import train
    from trainer.training.presets import preset_config
    tiny = {"data": {"resolution": 16, "max_images": 16}, "model": {"g_width": 4, "d_width": 4, "resnet_blocks": 1},
            "train": {"batch": 4, "kimg": 0.016, "threads": 1, "metrics": "", "grid_size": 2, "log_every": 1}}
    return train(preset_config("pix2pix", **tiny), outdir=tmp_path_factory.mktemp("runs"), progress=False).run_dir


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_monitor_fits_a_dcgan_run_and_hides_plots_without_data(qtbot, make_window, dcgan_run, size):
    window = sized_window(make_window, size)
    problems, shown = monitor_problems(qtbot, window, dcgan_run)
    assert not problems, problems
    assert set(shown) == {"losses", "d_outputs", "lr", "speed"}   # a DCGAN logs no GP, FID or classes


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_monitor_fits_the_demo_run(qtbot, make_window, size):
    window = sized_window(make_window, size)
    problems, shown = monitor_problems(qtbot, window, ROOT / "assets" / "demo")
    assert not problems, problems
    assert {"losses", "fid", "diversity", "classes"} <= set(shown) and "wasserstein" not in shown
    sample = window.monitor.sample_view   # the grid keeps its aspect, whatever room the column has
    drawn, (height, width) = sample.shown_rect(), sample.image.shape[:2]
    assert drawn.width() > 100 and abs(drawn.width() / drawn.height() - width / height) < 0.03


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("QT_SCALE_FACTOR") == "2", reason="this is the run at 2x")
def test_panels_fit_at_twice_the_pixel_ratio():
    """The same walks on a 2x screen (QT_SCALE_FACTOR=2: every window has device pixel ratio 2)."""
    env = dict(os.environ, QT_SCALE_FACTOR="2")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                          "latent_panels_fit or monitor_fits_the_demo or translate_panel_fits"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert out.returncode == 0 and re.search(r"\b8 passed", out.stdout), out.stdout[-3000:]


def test_the_walk_finds_a_cut_label_and_a_sideways_scroll_bar(qtbot):
    from PySide6.QtWidgets import QVBoxLayout
    root = QWidget()
    qtbot.addWidget(root)
    layout = QVBoxLayout(root)
    label = QLabel("Centre of the truncation")
    label.setFixedWidth(20)
    wide = QLabel("x" * 400)
    area = QScrollArea()
    area.setWidget(wide)
    layout.addWidget(label)
    layout.addWidget(area)
    root.resize(300, 200)
    root.show()
    settle(qtbot, 50)
    problems = clipped_widgets(root)
    assert any("Centre of the truncation" in p for p in problems)
    assert any("scrolls sideways" in p for p in problems)
    label.setFixedWidth(400)
    area.setWidgetResizable(True)
    wide.setText("short")
    settle(qtbot, 50)
    assert not clipped_widgets(root)
