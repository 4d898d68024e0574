"""The Qt-free render controller, driven inline: which workspace change asks for which render, one
render per model open, stale results dropped, jobs with previews."""
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
