"""The Qt-free render controller, driven inline: which workspace change asks for which render, one
render per model open, stale results dropped, jobs with previews."""
import json

import numpy as np
import pytest

from ganstudio.engine.controller import RenderController
from ganstudio.engine.renderer import Renderer
from ganstudio.engine.workspace import Workspace
from conftest import export_tiny
from trainer.latents import LatentState


@pytest.fixture
def ckpt(tmp_path):
    return export_tiny(tmp_path / "tiny.safetensors")


def opened(ckpt, **options):
    controller = RenderController.inline(Workspace(), Renderer("cpu"), **options)
    images = []
    controller.events.image.connect(images.append)
    controller.open(ckpt)
    return controller, images


def test_opening_a_model_renders_once_after_the_workspace_is_set(ckpt):
    controller, images = opened(ckpt)
    ws = controller.workspace
    # the warm-up render inside load is the renderer's own; the controller asks for exactly one
    # (directions are computed right after opening: a job, not a render)
    assert controller.renders_requested == 1 and len(images) == 1
    assert ws.checkpoint == controller.info.path and len(ws.mix_layers) == controller.info.num_ws
    assert ws.directions, "directions were computed after opening"
    # the one image shows the fully set workspace: the class centre chosen at open time
    assert ws.truncation_center == "class"
    old, old_images = opened(ckpt, render_per_field=True)
    assert old.renders_requested >= 3       # what opening used to cost: a render per changed field


def test_which_fields_render(ckpt):
    controller, images = opened(ckpt)
    ws = controller.workspace
    before = controller.renders_requested
    ws.directions = {"PC1": np.ones(16, np.float32)}        # the slider list: no render
    ws.grid_row_seeds = (5, 6)                              # the grid's seeds: the grid only
    assert controller.renders_requested == before
    ws.psi = 0.3
    assert controller.renders_requested == before + 1 and len(images) == before + 1
    with controller.held():
        ws.seed, ws.class_index, ws.noise_mode = 9, 1, "none"
    assert controller.renders_requested == before + 2


def test_stale_results_are_dropped_and_show_latent_bypasses_the_workspace(ckpt):
    controller, images = opened(ckpt)
    first = controller.last_result
    controller.show_latent(LatentState(seed=77, class_index=0, psi=1.0))
    assert controller.last_result is not first and controller.workspace.seed == 0
    dropped = controller.stale_dropped
    controller.on_rendered(first)                           # an old answer arriving late
    assert controller.stale_dropped == dropped + 1 and controller.last_result is not first


def test_jobs_report_previews_and_failures(ckpt):
    controller, _ = opened(ckpt)
    previews, results, failures = [], [], []

    def run(renderer, progress, preview):
        for step in range(3):
            progress(step / 3, f"step {step}")
            preview(step)
        return "done"

    controller.run_job("count", run, results.append, on_preview=previews.append)
    assert previews == [0, 1, 2] and results == ["done"] and "count" not in controller.jobs_running
    failed = []
    controller.events.job_failed.connect(failed.append)
    controller.run_job("broken", lambda r, p, v: 1 / 0)
    assert failed and failed[0][0] == "broken" and "division" in failed[0][1]
    controller.run_job("broken", lambda r, p, v: 1 / 0, on_failed=failures.append)
    assert failures and len(failed) == 1                    # a handler replaces the dialog


# ---- the window's decisions, now the controller's ----
def test_a_grid_cell_click_makes_that_mix_the_current_latent(ckpt):
    controller, images = opened(ckpt)
    ws = controller.workspace
    controller.set_grid_visible(True)
    grid = controller.last_grid
    assert grid is not None and grid.cell_ws is not None
    before = (ws.seed, ws.mix_seed, controller.renders_requested)
    assert not controller.choose_grid_cell(len(ws.grid_row_seeds), 0)     # below the last row: nothing
    assert not controller.choose_grid_cell(0, -1)
    assert (ws.seed, ws.mix_seed, controller.renders_requested) == before
    assert controller.choose_grid_cell(1, 2)
    assert ws.seed == ws.grid_row_seeds[1] and ws.mix_seed == ws.grid_col_seeds[2]
    assert controller.renders_requested == before[2] + 1                    # one render for all the fields
    cell = grid.cell_size
    # the header row and column come first: cell (1, 2) sits at grid position (2, 3)
    np.testing.assert_array_equal(controller.last_result.image,
                                  grid.image[2 * cell:2 * cell + 16, 3 * cell:3 * cell + 16])


def test_a_watched_run_reopens_on_a_newer_checkpoint_keeping_the_view(tmp_path):
    run = tmp_path / "run"
    export_tiny(run / "checkpoints" / "step-000001.safetensors", seed=0, step=1)
    controller, images = opened(run)
    assert controller.watch_dir == run and controller.opened_path == run
    assert controller.info.path.endswith("step-000001.safetensors")
    controller.workspace.seed = 3
    old = controller.last_result.image
    assert controller.newer_checkpoint() is None and controller.reload_if_newer() is None
    export_tiny(run / "checkpoints" / "step-000002.safetensors", seed=1, step=2)
    newer = controller.reload_if_newer()
    assert newer is not None and newer.name == "step-000002.safetensors"
    assert controller.info.path == str(newer) and controller.info.step == 2
    assert controller.workspace.seed == 3 and not np.array_equal(controller.last_result.image, old)
    assert controller.reload_if_newer() is None
    controller.open(newer)                                                  # a file is not watched
    assert controller.watch_dir is None and controller.newer_checkpoint() is None


def test_a_checkpoint_opened_by_a_relative_name_is_saved_so_the_workspace_reopens_elsewhere(ckpt, tmp_path,
                                                                                             monkeypatch):
    """`ganstudio model.safetensors` from the model's folder, then a workspace and a timeline saved
    in another: both name the model so that the files open from any folder (they used to name it
    relative to where the studio started, and readers take names as relative to the file)."""
    from trainer.film.timeline import Keyframe, Timeline
    monkeypatch.chdir(ckpt.parent)
    controller, _ = opened(ckpt.name)
    controller.workspace.update(seed=7, psi=0.4)
    saved = controller.last_result.image
    (tmp_path / "looks").mkdir()
    look = tmp_path / "looks" / "look.json"
    controller.workspace.save(look)
    Timeline((Keyframe(LatentState(seed=1)),), checkpoint=controller.info.path).save(tmp_path / "looks" / "t.json")
    monkeypatch.chdir(tmp_path / "looks")
    again, _ = opened(export_tiny(tmp_path / "other.safetensors", seed=4))
    again.open_workspace(look)
    assert again.info.path == str(ckpt) and again.workspace.seed == 7
    np.testing.assert_array_equal(again.last_result.image, saved)
    from trainer.cli.render_video import read_timeline
    assert read_timeline(tmp_path / "looks" / "t.json", None)[1] == str(ckpt)
    assert controller.opened_path == ckpt                                  # the recent-files list keeps this


def test_a_workspace_file_opens_its_checkpoint_relative_to_itself(ckpt, tmp_path):
    from ganstudio.engine.workspace import WorkspaceError
    controller, _ = opened(ckpt)
    controller.workspace.update(seed=7, psi=0.4)
    saved = controller.last_result.image
    look = tmp_path / "look.json"
    controller.workspace.save(look)
    d = json.loads(look.read_text())
    d["checkpoint"] = ckpt.name                                             # relative: next to the file
    look.write_text(json.dumps(d))
    other, images = opened(export_tiny(tmp_path / "other.safetensors", seed=4))
    other.open_workspace(look)
    assert other.info.path == str(ckpt) and other.workspace.seed == 7
    np.testing.assert_array_equal(other.last_result.image, saved)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(WorkspaceError):
        other.open_workspace(tmp_path / "broken.json")
    assert other.info.path == str(ckpt)
    d["class_index"] = 99                                                  # a class this model lacks
    look.write_text(json.dumps(d))
    other.workspace.update(seed=2)
    refusals = []
    other.open_workspace(look, on_refused=refusals.append)
    assert len(refusals) == 1 and "class_index" in refusals[0]             # said, and left out:
    assert other.workspace.seed == 2 and other.workspace.class_index < other.info.c_dim


def test_opening_a_tuned_copy_keeps_the_latent(ckpt, tmp_path):
    controller, _ = opened(ckpt)
    controller.workspace.update(seed=5, psi=0.6)
    copy = export_tiny(tmp_path / "copy.safetensors", seed=0)
    controller.open_keeping_latent(copy)
    assert controller.info.path == str(copy) and controller.workspace.seed == 5
    assert controller.workspace.psi == 0.6 and controller.workspace.checkpoint == str(copy)


def test_film_export_is_a_job_that_reports_progress(ckpt, tmp_path):
    from trainer.film.render import TimelineRenderer
    from trainer.film.timeline import Keyframe, Timeline, TimelineError
    from trainer.film.video import ExportError, ExportSettings
    from trainer import load_generator
    controller, _ = opened(ckpt)
    line = Timeline((Keyframe(LatentState(seed=1, class_index=0), 0.3), Keyframe(LatentState(seed=2, class_index=1))),
                    fps=10)
    progress, reports = [], []
    controller.events.job_progress.connect(progress.append)
    G = load_generator(ckpt)
    native = ExportSettings(str(tmp_path / "frames"), size=G.img_resolution)   # so the pixels compare exactly
    controller.export_film(line, native, 1, reports.append)
    assert len(reports) == 1 and reports[0].frames == line.frame_count
    assert progress and {name for name, _, _ in progress} == {"timeline export"}
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert len(frames) == line.frame_count
    from PIL import Image
    expected = TimelineRenderer(G, line).render_frames([line.frame_count - 1])[0]
    np.testing.assert_array_equal(np.asarray(Image.open(frames[-1]).convert("RGB")), expected)
    wrong = Timeline((Keyframe(LatentState.explicit(np.zeros((5, 16), np.float32))),), fps=10)
    with pytest.raises(TimelineError):
        controller.export_film(wrong, ExportSettings(str(tmp_path / "x.gif")))
    with pytest.raises(ExportError):
        controller.check_film(line, ExportSettings(str(tmp_path / "x.avi")))
    assert "timeline export" not in controller.jobs_running


def test_the_frame_rate_counts_the_images_shown_and_not_the_stale_ones(ckpt):
    from ganstudio.engine.frame_rate import FrameRate
    controller, _ = opened(ckpt)
    clock = iter(np.arange(100) * 0.1)                 # an image every 100 ms: 10 fps
    controller.frame_rate = FrameRate(clock=lambda: float(next(clock)))
    first = controller.last_result
    for psi in (0.1, 0.2, 0.3, 0.4):
        controller.workspace.psi = psi
    assert controller.frame_rate.describe(5.0) == "10.0 fps"
    controller.on_rendered(first)                      # stale: dropped, not counted
    assert next(clock) == pytest.approx(0.4)


def test_commit_a_mix_and_export_what_is_on_screen(ckpt, tmp_path):
    from PIL import Image
    controller, _ = opened(ckpt)
    with pytest.raises(ValueError, match="no mixing grid"):
        controller.export_grid(tmp_path / "grid.png")
    ws = controller.workspace
    ws.update(mix_seed=9, mix_layers=(True, True, True, False, False, False))
    mixed = controller.last_result.image
    controller.commit_mix()
    assert ws.base_ws is not None and np.array_equal(controller.last_result.image, mixed)
    controller.export_image(tmp_path / "x2.png", scale=2)
    big = np.asarray(Image.open(tmp_path / "x2.png").convert("RGB"))
    assert big.shape == (32, 32, 3) and np.array_equal(big[::2, ::2], mixed) and np.array_equal(big[1::2, 1::2], mixed)
