"""The studio where things go wrong: no screen at all, a bad --threads, a Pix2Pix run whose data
is gone, and workspace files with numbers out of range, a class or W+ latent the model does not
have, or nesting deep enough to overflow json: each refused with a message naming the field,
never an abort, a hang or a picture of something else."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from conftest import TIMEOUT_MS, export_tiny, wait_shown
from ganstudio.app import NO_SCREEN, choose_platform
from ganstudio.engine.workspace import Workspace, WorkspaceError

ROOT = Path(__file__).resolve().parents[2]
HEADER = {"format": "ganstudio.workspace", "version": 1}


def studio(*args, timeout=120):
    """The studio as a user starts it, with no screen: no DISPLAY, WAYLAND_DISPLAY or QT_QPA_PLATFORM."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run([sys.executable, "-m", "ganstudio", *map(str, args), "--device", "cpu", "--threads", "1"],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_platform_choice_follows_the_user_then_the_screen():
    env = {"QT_QPA_PLATFORM": "xcb"}
    assert choose_platform(True, env) is None and env["QT_QPA_PLATFORM"] == "xcb"   # the user's choice stays
    env = {}
    assert choose_platform(True, env) is None and env["QT_QPA_PLATFORM"] == "offscreen"
    env = {"DISPLAY": ":0"}
    assert choose_platform(False, env) is None and "QT_QPA_PLATFORM" not in env
    if sys.platform.startswith("linux"):
        assert choose_platform(False, {}) == NO_SCREEN


@pytest.mark.slow
def test_screenshot_with_no_screen_picks_the_offscreen_platform(tmp_path):
    ckpt = export_tiny(tmp_path / "tiny.safetensors")
    shot = tmp_path / "shot.png"
    out = studio(ckpt, "--screenshot", shot, "--size", "1024x700")
    assert out.returncode == 0, out.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (700, 1024, 3) and pixels.std() > 10


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="other systems always have a screen")
def test_no_screen_and_no_screenshot_says_what_to_do_in_one_line():
    out = studio("--panel", "latent", timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "xvfb-run" in lines[0] and "--screenshot" in lines[0]


@pytest.mark.parametrize("value", ["-1", "abc", "100000"])
def test_threads_out_of_range_is_a_usage_message(value, capsys):
    from ganstudio.app import main
    with pytest.raises(SystemExit) as exit_:
        main(["--threads", value])   # refused while parsing: before any window or thread exists
    assert exit_.value.code == 2 and "argument --threads" in capsys.readouterr().err


@pytest.mark.slow
def test_a_pix2pix_run_whose_data_is_gone_still_reaches_the_screenshot(tmp_path):
    from trainer.training.loop import train
    from trainer.training.presets import preset_config
    tiny = {"data": {"resolution": 16, "max_images": 16}, "model": {"g_width": 4, "d_width": 4, "resnet_blocks": 1},
            "train": {"batch": 4, "kimg": 0.008, "threads": 1, "metrics": "", "grid_size": 2, "log_every": 1}}
    run_dir = train(preset_config("pix2pix", **tiny), outdir=tmp_path, progress=False).run_dir
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["source"] = str(tmp_path / "moved-away")   # its held-out inputs cannot be read
    (run_dir / "config.json").write_text(json.dumps(config))
    out = studio(run_dir, "--screenshot", tmp_path / "shot.png", timeout=60)   # it waited 180 s before
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "shot.png").is_file()


# ---- workspace files ----
@pytest.mark.parametrize("fields, named", [({"psi": 1e300}, "'psi'"), ({"z_threshold": -1}, "'z_threshold'"),
                                           ({"cutoff": 10**9}, "'cutoff'"),
                                           ({"direction_offsets": {"PC1": 1e200}}, "'direction_offsets'"),
                                           ({"base_ws": [[1e30] * 4] * 2}, "'base_ws'"),
                                           ({"base_ws": [[0.0] * 4] * 2, "photo_ws": [[0.0] * 3] * 2}, "'photo_ws'")])
def test_out_of_range_workspace_values_are_refused_naming_the_field(fields, named):
    with pytest.raises(WorkspaceError, match=named):
        Workspace.from_dict(dict(HEADER, **fields))


def test_a_deeply_nested_workspace_file_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"format": "ganstudio.workspace", "version": 1, "timeline": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(WorkspaceError, match="nested too deeply"):
        Workspace.load(path)


def test_a_class_or_latent_the_model_lacks_is_refused():
    with pytest.raises(WorkspaceError, match="'class_index' = 99: this model has 3 classes"):
        Workspace(class_index=99).check_fits(3, 6, 16)
    with pytest.raises(WorkspaceError, match=r"'base_ws'.*\[3, 5\].*\[6, 16\]"):
        Workspace(base_ws=np.zeros((3, 5), np.float32)).check_fits(3, 6, 16)
    Workspace(class_index=2, base_ws=np.zeros((6, 16), np.float32)).check_fits(3, 6, 16)   # fits: no error


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4), max_leaves=20)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(Workspace().to_dict())), json_values, max_size=6))
def test_any_json_workspace_opens_or_is_refused_with_a_workspace_error(fields):
    try:
        workspace = Workspace.from_dict(dict(fields, **HEADER))
    except WorkspaceError as exc:
        assert "workspace" in str(exc)
        return
    assert Workspace.from_dict(workspace.to_dict()).to_dict() == workspace.to_dict()   # and saves as it opened


@pytest.mark.slow
def test_the_window_refuses_a_workspace_for_another_model_and_stays_usable(make_window, qtbot, tmp_path):
    ckpt = export_tiny(tmp_path / "tiny.safetensors")
    window = make_window(ckpt)
    path = tmp_path / "other.json"
    path.write_text(json.dumps(dict(HEADER, checkpoint=str(ckpt), class_index=99, seed=5)))
    window.open_workspace(path)
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=TIMEOUT_MS)
    assert "'class_index' = 99" in window.error_box.text() and window.workspace.class_index < 3
    wait_shown(qtbot, window)
    window.workspace.seed = 7   # still drawing
    wait_shown(qtbot, window)
    assert window.last_result.request_id == window.controller.requested_id
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(HEADER, checkpoint=str(ckpt), class_index=2, seed=11, psi=0.5)))
    window.open_workspace(good)
    qtbot.waitUntil(lambda: window.workspace.seed == 11, timeout=TIMEOUT_MS)
    assert window.workspace.class_index == 2 and window.workspace.psi == 0.5
