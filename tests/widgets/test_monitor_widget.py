"""The training monitor's window, driven offscreen with real training runs writing real logs."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt, QTimer   # noqa: E402
from PySide6.QtWidgets import QApplication   # noqa: E402

from ganstudio.engine.runlog import ema_smooth, write_csv   # noqa: E402
from ganstudio.widgets.monitor import MonitorWidget   # noqa: E402
from ganstudio.widgets.monitor_control import NewRunDialog   # noqa: E402
from trainer.training.loop import new_run_dir, train   # noqa: E402


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import conftest
    cfg = conftest.tiny_config("dcgan", train={"kimg": 0.096, "log_every": 1})
    return train(cfg, outdir=tmp_path_factory.mktemp("runs"), progress=False).run_dir


@pytest.fixture
def monitor(qtbot):
    widget = MonitorWidget(poll_interval_ms=50)
    qtbot.addWidget(widget)
    widget.resize(1400, 850)
    widget.show()
    yield widget
    widget.shutdown()


def _alerts_text(widget, run):
    """The Alerts column: a count, with each alert named in its tooltip."""
    item = widget._items[id(run)]
    return item.text(3) + "\n" + item.toolTip(3)


@pytest.mark.slow
def test_curves_grow_while_a_real_run_trains_and_bad_lines_are_survived(qtbot, monitor, tmp_path, tiny):
    cfg = tiny("dcgan", train={"kimg": 1000.0, "log_every": 1, "sample_kimg": 0.04, "snapshot_kimg": 0.08})
    run_dir = new_run_dir(tmp_path, cfg)
    stop = threading.Event()
    trainer = threading.Thread(target=train, kwargs=dict(cfg=cfg, run_dir=run_dir, progress=False,
                                                         stop_event=stop))
    run = monitor.add_run(run_dir)   # opened before the trainer has written anything
    trainer.start()
    try:
        seen = []

        def drawn():
            x, _ = monitor.plots.curve_data(run, "loss/D")
            if not seen or len(x) != seen[-1]:
                seen.append(len(x))
            return len(x)

        qtbot.waitUntil(lambda: drawn() >= 3, timeout=60_000)
        first = drawn()
        qtbot.waitUntil(lambda: drawn() >= first + 10, timeout=60_000)
        assert trainer.is_alive() and run.state == "running"
        assert len([n for n in seen if n > 0]) >= 2, seen   # the curve grew in steps as lines arrived
        assert monitor._items[id(run)].text(1) == "running"
    finally:
        stop.set()
        trainer.join(60)
    qtbot.waitUntil(lambda: run.state == "stopped" and not monitor.is_loading(), timeout=20_000)
    x, y = monitor.plots.curve_data(run, "loss/D")
    np.testing.assert_array_equal(x, run.scalars["loss/D"].column("step"))
    assert np.all(np.diff(x) > 0) and np.isfinite(y).all()
    last = int(x[-1])

    # A foreign line, a NaN, and a line the writer has only half written.
    def scalars(step, value):
        return json.dumps({"kind": "scalars", "step": step, "kimg": 0, "time": 0, "values": {"loss/D": value}})
    with open(run_dir / "events.jsonl", "a") as f:
        f.write("<<< not a log line >>>\n")
        f.write(scalars(last + 1, "nan") + "\n")
        half = scalars(last + 2, 0.5)
        f.write(half[:30])
    qtbot.waitUntil(lambda: "NaN" in _alerts_text(monitor, run), timeout=5_000)
    assert ("losses", run.name, "nan") in monitor.plots.alert_markers()
    assert run.bad_lines == 1 and len(monitor.plots.curve_data(run, "loss/D")[0]) == len(x) + 1
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(half[30:] + "\n")
    qtbot.waitUntil(lambda: len(monitor.plots.curve_data(run, "loss/D")[0]) == len(x) + 2, timeout=5_000)
    assert run.scalars["loss/D"].column("value")[-1] == 0.5 and run.bad_lines == 1

    # The sample timeline follows the grids; exploring asks for the nearest checkpoint on disk.
    grids = run.sample_grids()
    assert len(grids) >= 2 and monitor.sample_slider.maximum() == len(grids) - 1
    monitor.sample_slider.setValue(0)
    assert monitor.sample_view.image is not None and monitor.sample_label.text().startswith("step 0")
    with qtbot.waitSignal(monitor.open_checkpoint_requested, timeout=2_000) as blocker:
        qtbot.mouseClick(monitor.explore_button, Qt.MouseButton.LeftButton)
    path = Path(blocker.args[0])
    assert path.is_file() and path == run.checkpoint_files()[0].path


@pytest.mark.slow
def test_axis_smoothing_hover_readout_overlay_and_export(qtbot, monitor, finished_run, tmp_path):
    run = monitor.add_run(finished_run)
    qtbot.waitUntil(lambda: not monitor.is_loading() and run.state == "finished", timeout=10_000)
    raw = run.scalars["loss/G"].column("value")

    monitor.smoothing.setValue(0)
    np.testing.assert_array_equal(monitor.plots.curve_data(run, "loss/G")[1], raw)
    monitor.smoothing.setValue(90)
    np.testing.assert_allclose(monitor.plots.curve_data(run, "loss/G")[1], ema_smooth(raw, 0.9))

    monitor.x_axis.setCurrentText("kimg")
    np.testing.assert_array_equal(monitor.plots.curve_data(run, "loss/G")[0], run.scalars["loss/G"].column("kimg"))
    monitor.x_axis.setCurrentText("step")

    # Hovering over the losses plot at step 5 reads out both losses there.
    plot = monitor.plots.plots["losses"]
    plot.vb.setRange(xRange=(0, 12), yRange=(0, 3), padding=0)
    scene_pos = plot.vb.mapViewToScene(QPointF(5.1, 1.0))
    monitor.plots.scene().sigMouseMoved.emit(scene_pos)
    smoothed_g = ema_smooth(raw, 0.9)[4]
    assert monitor.readout.text().startswith("step 5:")
    assert f"loss/G = {smoothed_g:.4g}" in monitor.readout.text() and "loss/D = " in monitor.readout.text()

    # A second run is overlaid in another colour and named in the legend.
    other = tmp_path / "00001-copy"
    other.mkdir()
    (other / "events.jsonl").write_bytes((finished_run / "events.jsonl").read_bytes())
    second = monitor.add_run(other)
    qtbot.waitUntil(lambda: not monitor.is_loading(), timeout=10_000)
    pens = {r: monitor.plots._runs[i].curves["s:loss/G"].smooth.opts["pen"].color().name()
            for i, r in enumerate((run, second))}
    assert pens[run] != pens[second]
    legend = [label.text for _, label in monitor.plots._legends["losses"].items]
    assert any(second.name[:10] in t for t in legend) and any(run.name[:10] in t for t in legend)

    png_one, png_all, table = tmp_path / "losses.png", tmp_path / "all.png", tmp_path / "data.csv"
    monitor.plots.export_png(str(png_one), "losses")
    monitor.plots.export_png(str(png_all))
    assert Image.open(png_one).size[0] == 900 and Image.open(png_all).size[0] > 500
    assert write_csv(monitor.runs, table) == 2 * sum(len(s) for s in run.scalars.values())

    monitor.remove_run(second)
    assert len(monitor.plots._runs) == 1 and monitor.run_list.topLevelItemCount() == 1


def test_opening_something_that_is_not_a_run_is_a_clear_error(monitor, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        monitor.add_run(tmp_path / "missing")
    assert monitor.runs == []


def _fill_new_run_form(outdir):
    """Fill and accept the modal New run dialog once it is open."""
    dialog = QApplication.activeModalWidget()
    if not isinstance(dialog, NewRunDialog):
        QTimer.singleShot(50, lambda: _fill_new_run_form(outdir))
        return
    dialog.preset.setCurrentText("toy-gan")
    dialog.dataset.setCurrentText("ring8")
    dialog.kimg.setValue(5000)
    dialog.threads.setValue(1)
    dialog.outdir.setText(str(outdir))
    dialog.extra.setText("--log-every 4 --batch 32")
    dialog.accept()


@pytest.mark.slow
def test_start_stop_and_resume_a_run_through_the_gui(qtbot, monitor, tmp_path):
    outdir = tmp_path / "runs"
    QTimer.singleShot(0, lambda: _fill_new_run_form(outdir))
    qtbot.mouseClick(monitor.new_run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(monitor.runs) == 1, timeout=30_000)
    run = monitor.runs[0]
    assert run.run_dir.parent == outdir.resolve() and monitor.selected_run() is run

    def points():
        return len(monitor.plots.curve_data(run, "loss/D")[0])

    qtbot.waitUntil(lambda: points() >= 3 and monitor.stop_button.isEnabled(), timeout=60_000)
    assert not monitor.resume_button.isEnabled()
    qtbot.mouseClick(monitor.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.state == "stopped" and not monitor.processes, timeout=60_000)
    stopped_at = run.last_step
    assert "stopped at step" in run.status_message
    assert (run.run_dir / "state" / "last.pt").is_file()
    qtbot.waitUntil(monitor.resume_button.isEnabled, timeout=5_000)

    qtbot.mouseClick(monitor.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.resumes == [stopped_at] and run.last_step >= stopped_at + 8, timeout=60_000)
    assert run.state == "running" and monitor.stop_button.isEnabled()
    qtbot.mouseClick(monitor.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.state == "stopped" and not monitor.processes and not monitor.is_loading(),
                    timeout=60_000)
    steps = monitor.plots.curve_data(run, "loss/D")[0]
    assert np.all(np.diff(steps) > 0) and steps[-1] > stopped_at
    console = monitor.console.toPlainText()
    assert "$ " in console and "--resume" in console and "stopped:" in console
    assert monitor._items[id(run)].text(1) == "stopped"


def test_a_long_log_is_drawn_as_an_envelope_and_zooming_in_shows_every_point(qtbot, monitor, tmp_path):
    from ganstudio.widgets.monitor_plots import DISPLAY_BINS
    run_dir = tmp_path / "00000-long"
    run_dir.mkdir()
    rng = np.random.RandomState(0)
    values = rng.normal(1.0, 0.1, 20_000)
    values[12_345] = 9.0   # one spike that must stay visible
    with open(run_dir / "events.jsonl", "w") as f:
        for i, v in enumerate(values):
            f.write(json.dumps({"kind": "scalars", "step": i, "kimg": i / 100, "time": i / 10,
                                "values": {"loss/D": v}}) + "\n")
    monitor.smoothing.setValue(0)
    run = monitor.add_run(run_dir)
    qtbot.waitUntil(lambda: not monitor.is_loading(), timeout=30_000)
    item = monitor.plots._runs[0].curves["s:loss/D"].smooth
    x, y = item.getOriginalDataset()
    assert len(x) <= 4 * DISPLAY_BINS + 64 and y.max() == 9.0 and y.min() == values.min()
    assert len(monitor.plots.curve_data(run, "loss/D")[0]) == 20_000   # the read-out sees every point

    monitor.plots.plots["losses"].vb.setXRange(1000, 1100, padding=0)
    qtbot.waitUntil(lambda: len(item.getOriginalDataset()[0]) < 200, timeout=2_000)
    x, y = item.getOriginalDataset()
    np.testing.assert_array_equal(y, values[int(x[0]):int(x[-1]) + 1])
    assert x[0] <= 1000 and x[-1] >= 1100
    monitor.plots.plots["losses"].vb.enableAutoRange()
    qtbot.waitUntil(lambda: len(item.getOriginalDataset()[0]) >= 2 * (DISPLAY_BINS - 20), timeout=2_000)


def test_compact_tick_labels_and_a_damaged_sample_grid(qtbot, monitor, tmp_path, tiny):
    from ganstudio.widgets.plot_items import _compact_number
    assert [_compact_number(v, 1000) for v in (0, 1000, 2000, 3000)] == ["0", "1k", "2k", "3k"]
    assert _compact_number(0.0025, 0.0005) == "0.0025"
    assert _compact_number(2500, 500) == "2.5k" and _compact_number(0.25, 0.05) == "0.25"
    # a sample grid that cannot be read says so, instead of an empty panel
    cfg = tiny("dcgan")
    run_dir = new_run_dir(tmp_path, cfg)
    (run_dir / "samples").mkdir(exist_ok=True)
    (run_dir / "samples" / "step-000010.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (run_dir / "events.jsonl").write_text(json.dumps({"kind": "samples", "step": 10, "kimg": 0.1, "time": 1,
                                                      "path": "samples/step-000010.png"}) + "\n")
    monitor.add_run(run_dir)
    qtbot.waitUntil(lambda: "cannot read step-000010.png" in monitor.sample_label.text(), timeout=10_000)


def test_a_series_with_one_point_is_drawn_as_a_dot(qtbot, monitor, tmp_path):
    run_dir = tmp_path / "00000-one-point"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text(json.dumps({"kind": "scalars", "step": 5, "kimg": 0.1, "time": 1,
                                                      "values": {"loss/D": 0.7, "loss/G": 1.2}}) + "\n")
    monitor.add_run(run_dir)

    def curve():
        runs = monitor.plots._runs
        return runs[0].curves.get("s:loss/D") if runs else None

    qtbot.waitUntil(lambda: curve() is not None and curve().smooth.getData()[0] is not None
                    and len(curve().smooth.getData()[0]) == 1, timeout=10_000)
    assert curve().smooth.opts["symbol"] == "o"            # a line through one point would draw nothing


def test_plots_fill_their_rows_evenly_in_a_wide_window(qtbot, monitor):
    from ganstudio.engine.demo import DEMO_DIR
    monitor.resize(2400, 1000)                                              # 8 plots' width beside the lists
    monitor.add_run(DEMO_DIR)
    grid = monitor.plots.grid
    qtbot.waitUntil(lambda: len(grid.shown) == 10, timeout=20_000)          # the demo's log fills 10 plots
    qtbot.waitUntil(lambda: [len(row) for row in grid.rows] == [5, 5], timeout=5_000)   # not 8 + 2
    monitor.resize(1400, 850)
    qtbot.waitUntil(lambda: len(grid.rows) > 2, timeout=5_000)
    lengths = [len(row) for row in grid.rows]
    assert sum(lengths) == 10 and lengths[:-1] == [lengths[0]] * (len(lengths) - 1) and lengths[-1] <= lengths[0]


@pytest.mark.slow
def test_metric_dots_are_the_measured_values_whatever_the_smoothing(qtbot, monitor):
    """FID, KID and the rest are each one costly measurement drawn as a dot with its own band; the
    smoothing slider is for the per-step losses. A smoothed FID dot once read 363 where 328 was measured."""
    root = Path(__file__).resolve().parents[2]
    run = monitor.add_run(root / "assets" / "demo")
    qtbot.waitUntil(lambda: not monitor.is_loading(), timeout=20_000)
    monitor.smoothing.setValue(90)
    for name in ("fid", "kid", "recall"):
        measured = run.metrics[name].column("value")
        assert len(measured) > 3
        np.testing.assert_array_equal(monitor.plots.curve_data(run, name, metric=True)[1], measured)
    raw = run.scalars["loss/G"].column("value")   # the losses are still smoothed
    np.testing.assert_allclose(monitor.plots.curve_data(run, "loss/G")[1], ema_smooth(raw, 0.9))
