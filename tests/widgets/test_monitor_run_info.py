"""Where a run started from (--init), as the monitor's model says it and its window shows it."""
import json

import pytest

from ganstudio.engine.monitor_model import MonitorModel


def _run(root, name, init=""):
    run_dir = root / name
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("")
    config = {"task": "gan", "preset": "stylegan2", "data": {"source": "digits"},
              "model": {"arch": "stylegan2", "img_resolution": 32}, "train": {"init": init}}
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def test_the_run_info_names_the_model_a_run_started_from(tmp_path):
    model = MonitorModel()
    tuned = model.add_run(_run(tmp_path, "00001-tuned", init="/models/ffhq.pkl"))
    scratch = model.add_run(_run(tmp_path, "00002-scratch"))
    assert model.run_info(tuned) == "stylegan2 · digits · stylegan2 32 px · started from ffhq.pkl (/models/ffhq.pkl)"
    assert model.run_info(scratch).endswith("started from scratch")
    late = tmp_path / "00003-late"   # a run started here: its directory appears before its config.json
    late.mkdir()
    (late / "events.jsonl").write_text("")
    run = model.add_run(late)
    assert model.run_info(run) == "" and model.run_info(None) == ""
    (late / "config.json").write_text((tmp_path / "00001-tuned" / "config.json").read_text())
    assert "started from ffhq.pkl" in model.run_info(run)


def test_the_monitor_shows_where_the_selected_run_started_from(qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from ganstudio.widgets.monitor import MonitorWidget
    widget = MonitorWidget(poll_interval_ms=50)
    qtbot.addWidget(widget)
    widget.show()
    widget.add_run(_run(tmp_path, "00001-tuned", init="/models/ffhq.pkl"))
    widget.add_run(_run(tmp_path, "00002-scratch"))
    assert "started from ffhq.pkl" in widget.run_info.text()
    widget.run_list.setCurrentItem(widget.run_list.topLevelItem(1))
    assert widget.run_info.text().endswith("started from scratch")
    widget.shutdown()
