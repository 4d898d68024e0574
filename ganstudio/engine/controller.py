"""The render controller: from workspace changes to render requests, from results to what is shown.

Qt-free. It owns the bookkeeping the window used to hold: request ids, which workspace field asks
for which render, dropping results older than the one on screen, opening models (the workspace is
set in one piece, then rendered once), long jobs with progress, previews and cancel, and the
window's decisions: what a mixing-grid click does, when a watched run has a newer checkpoint, how a
workspace file or a film export is opened, the frame rate shown. Work goes
to a backend, the one thread that owns the renderer: the Qt worker in the app, or `InlineBackend`
in scripts and tests. Views subscribe to `controller.events`:

  model(ModelInfo)         a model finished opening and the workspace is set for it
  image(RenderResult)      a newer image is ready to show
  grid(RenderResult)       a newer mixing grid is ready to show
  render_error(str)        the newest image failed (the previous one stays on screen)
  grid_error(str)
  job_progress((name, fraction, message))   jobs_changed(None) when the set of running jobs changes
  job_failed((name, message))               a job other than a silent cancel failed
  device((device, half))   where rendering happens now
  blend(PartnerInfo)       a second model is blended with the open one (None: blending stopped); `blending`
                           holds the partner, the settings and the jobs (engine.blending)
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trainer.latents import LatentState, default_truncation_center

from .blending import BlendControl
from .events import EmitterGroup
from .frame_rate import FrameRate
from .frame_timing import PaintClock
from .from_workspace import grid_from_workspace, request_from_workspace
from .inline_backend import InlineBackend
from .layers import LayerViewControl
from .model_info import ModelInfo
from .opening import workspace_checkpoint
from .renderer import MixingGrid, Renderer, RenderRequest, RenderResult
from .workspace import Workspace, WorkspaceError

# Which workspace fields ask for which render. `directions` (the list of sliders) asks for none:
# only the offsets move the image.
GRID_FIELDS = frozenset({"class_index", "psi", "cutoff", "truncation_center", "noise_mode", "mix_layers",
                         "grid_row_seeds", "grid_col_seeds", "direction_offsets", "direction_layers",
                         "photo_ws", "grid_photo", "translate_x", "translate_y", "rotate_deg"})
IMAGE_FIELDS = (GRID_FIELDS - {"grid_row_seeds", "grid_col_seeds", "photo_ws", "grid_photo"}) \
    | {"seed", "z_threshold", "mix_seed", "base_ws"}
FILM_JOB = "timeline export"

Progress = Callable[[float, str], None]      # (fraction 0-1, message); raises Cancelled once cancelled
Preview = Callable[[Any], None]              # plain data for the GUI while a job runs (an image, a curve point)
JobRun = Callable[[Renderer, Progress, Preview], Any]


@dataclass(frozen=True)
class Job:
    """Long work for the thread that owns the renderer."""
    name: str                          # what the GUI shows ("load", "directions", "invert" ...)
    run: JobRun                        # (renderer, progress, preview) -> result (plain data)
    token: int = 0                     # matches the answers to the job


@dataclass
class _JobHandlers:
    name: str
    on_finished: Callable[[Any], None] | None
    on_failed: Callable[[str], None] | None       # "" = cancelled
    on_preview: Callable[[Any], None] | None


class RenderController:
    def __init__(self,
                 workspace: Workspace,
                 backend,                         # submit(RenderRequest), submit_job(Job), cancel(), is_idle()
                 device: str = "cpu",             # where the backend's renderer renders (plain value, kept here)
                 half: bool = False,
                 render_per_field: bool = False,  # the old behaviour, for benchmarks: each opening field renders
                 tune: bool = True,               # measure the fastest render settings after opening (cpu)
                 ):
        self.workspace = workspace
        self.backend = backend
        self.device, self.half = device, half
        self.render_per_field, self.tune = render_per_field, tune
        self.events = EmitterGroup(["model", "image", "grid", "render_error", "grid_error", "job_progress",
                                    "job_failed", "jobs_changed", "device", "blend"])
        self.info: ModelInfo | None = None
        self.last_result: RenderResult | None = None
        self.last_grid: RenderResult | None = None
        self.grid_visible = False           # the grid renders only while a view shows it
        self.grid_dirty = True
        self.stale_dropped = 0              # results that arrived after a newer one was shown
        self.renders_requested = 0          # image requests sent (benchmarks count them per model open)
        self.requested_id = -1              # the newest image request sent to the backend
        self.requested_grid_id = -1
        self.shown_id = -1
        self.shown_grid_id = -1
        self.jobs_running: dict[str, str] = {}   # job name -> last message
        self.frame_rate = FrameRate()       # of the images shown
        self.paint_clock = PaintClock()     # how long showing each image took; its stages with it (frame_timing)
        self.opened_path: Path | None = None     # what the user opened last (a run directory, not its file)
        self.render_settings = ""           # "rendering on cpu: bf16, 1 thread (measured 1.6x fp32)", once measured
        self.watch_dir: Path | None = None       # the run directory open now, watched for newer checkpoints
        self._next_id = 0
        self._held = 0
        self._held_fields: set[str] = set()
        self._handlers: dict[int, _JobHandlers] = {}
        self._next_token = 0
        self.blending = BlendControl(self)   # the open model blended live with a second one
        self.layer_view = LayerViewControl(self)   # which synthesis layer the images also draw
        workspace.events.changed.connect(self._on_workspace_changed)

    @classmethod
    def inline(cls, workspace: Workspace, renderer: Renderer, **options) -> "RenderController":
        """A controller whose work runs at once on the calling thread (scripts, tests, benchmarks)."""
        backend = InlineBackend(renderer)
        options.setdefault("tune", False)   # scripts and tests render as they ask, unmeasured
        controller = cls(workspace, backend, renderer.device, renderer.half, **options)
        backend.controller = controller
        return controller

    # ---- renders ----
    @contextlib.contextmanager
    def held(self):
        """Change several workspace fields, then render once for all of them."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._held_fields:
                fields, self._held_fields = self._held_fields, set()
                self._ask_for(fields)

    def _on_workspace_changed(self, name: str) -> None:
        if self.info is None:
            return
        if self._held and not self.render_per_field:
            self._held_fields.add(name)
            return
        self._ask_for({name})

    def _ask_for(self, fields: set[str]) -> None:
        old_way = self.render_per_field and "directions" in fields   # the direction list used to render too
        if "checkpoint" in fields or fields & IMAGE_FIELDS or old_way:
            self.request_render()
        if "checkpoint" in fields or fields & GRID_FIELDS:
            self.grid_dirty = True
            self.request_grid()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request_render(self) -> None:
        """Render the workspace's image (the newest request wins on the backend)."""
        if self.info is None or self.info.translates:   # translations are the Translate panel's jobs
            return
        self.requested_id = self._new_id()
        self.renders_requested += 1
        self.backend.submit(request_from_workspace(self.workspace, self.info, self.requested_id,
                                                   blend=self.blending.request_spec(),
                                                   layer=self.layer_view.request_choice()))

    def show_latent(self, latent: LatentState) -> int:
        """Render an arbitrary latent state as the image on screen (a timeline frame under the
        cursor) without changing the workspace. Returns the request id."""
        if self.info is None:
            raise ValueError("no model is open")
        self.requested_id = self._new_id()
        self.renders_requested += 1
        self.backend.submit(RenderRequest(self.requested_id, self.info.generation, latent,
                                          blend=self.blending.request_spec(), layer=self.layer_view.request_choice()))
        return self.requested_id

    def set_grid_visible(self, visible: bool) -> None:
        self.grid_visible = visible
        self.request_grid()

    def request_grid(self) -> None:
        """The mixing grid renders only while it is visible, so it never slows the main image."""
        if self.info is None or not self.info.has_w or not self.grid_dirty or not self.grid_visible:
            return
        self.grid_dirty = False
        self.requested_grid_id = self._new_id()
        self.backend.submit(request_from_workspace(self.workspace, self.info, self.requested_grid_id, grid=True,
                                                   blend=self.blending.request_spec()))

    def on_rendered(self, result: RenderResult) -> None:
        """An image result from the backend (GUI thread)."""
        if result.request_id <= self.shown_id:
            self.stale_dropped += 1     # a newer image is already on screen
            return
        self.shown_id = result.request_id
        if result.error:
            self.events.render_error.emit(result.error)
            return
        self.last_result = result
        if result.settings and result.settings != self.render_settings:   # measured, or changed since
            self.render_settings = result.settings
            self.events.device.emit((self.device, self.half))
        self.frame_rate.frame_shown()
        with self.paint_clock.painting(result.timing):
            self.events.image.emit(result)

    def on_grid_rendered(self, result: RenderResult) -> None:
        if result.request_id <= self.shown_grid_id:
            self.stale_dropped += 1
            return
        self.shown_grid_id = result.request_id
        if result.error:
            self.events.grid_error.emit(result.error)
            return
        self.last_grid = result
        self.events.grid.emit(result)

    def is_current(self) -> bool:
        """The newest requested image is on screen and nothing is left to do."""
        return self.shown_id == self.requested_id and not self.jobs_running and self.backend.is_idle()

    # ---- jobs ----
    def run_job(self,
                name: str,                                  # shown in the progress bar; one of a kind at a time
                run: JobRun,                                # runs on the renderer's thread
                on_finished: Callable[[Any], None] | None = None,
                on_failed: Callable[[str], None] | None = None,   # "" = cancelled; None = a dialog via job_failed
                on_preview: Callable[[Any], None] | None = None,
                message: str = "",
                ) -> int:
        """Queue long work for the renderer's thread; answers come back on the GUI thread."""
        self._next_token += 1
        token = self._next_token
        self._handlers[token] = _JobHandlers(name, on_finished, on_failed, on_preview)
        self.jobs_running[name] = message or f"{name}…"
        self.events.jobs_changed.emit(None)
        self.backend.submit_job(Job(name, run, token))
        return token

    def cancel_jobs(self) -> None:
        self.backend.cancel()

    def on_job_progress(self, name: str, token: int, fraction: float, message: str) -> None:
        if token in self._handlers:
            self.jobs_running[name] = message
            self.events.job_progress.emit((name, fraction, message))

    def on_job_preview(self, name: str, token: int, payload) -> None:
        handlers = self._handlers.get(token)
        if handlers is not None and handlers.on_preview is not None:
            handlers.on_preview(payload)

    def on_job_finished(self, name: str, token: int, result) -> None:
        handlers = self._end_job(name, token)
        if handlers is not None and handlers.on_finished is not None:
            handlers.on_finished(result)

    def on_job_failed(self, name: str, token: int, message: str) -> None:
        handlers = self._end_job(name, token)
        if handlers is not None and handlers.on_failed is not None:
            handlers.on_failed(message)
        elif message:
            self.events.job_failed.emit((name, message))

    def _end_job(self, name: str, token: int) -> _JobHandlers | None:
        handlers = self._handlers.pop(token, None)
        if all(h.name != name for h in self._handlers.values()):   # no other job of that name is queued
            self.jobs_running.pop(name, None)
        self.events.jobs_changed.emit(None)
        return handlers

    # ---- models ----
    def open(self,
             path,                                   # checkpoint file or run directory
             restore: Workspace | None = None,       # a workspace to show once it is open (its file)
             keep_state: bool = False,               # a newer snapshot of the same run: keep the view
             on_failed: Callable[[str], None] | None = None,
             on_refused: Callable[[str], None] | None = None,   # `restore` does not fit the model: why
             ) -> int:
        """Open a checkpoint on the backend; the open model stays until the new one is ready."""
        # absolute from here on: the workspace, timelines and recent files saved later name the model
        # by this path, and a name relative to the folder the studio started in finds nothing elsewhere
        path = Path(os.path.abspath(path))
        self.opened_path = path
        self.watch_dir = path if path.is_dir() else None

        def loaded(info: ModelInfo) -> None:
            self._on_model_loaded(info, self._fitting(restore, info, on_refused), keep_state)

        return self.run_job("load", lambda renderer, progress, preview: renderer.load(path, progress),
                            loaded, on_failed, message=f"opening {path.name}")

    def open_workspace(self, path, on_failed: Callable[[str], None] | None = None,
                       on_refused: Callable[[str], None] | None = None) -> int:
        """Open a workspace file: its checkpoint, shown as the file saved it. WorkspaceError when the
        file cannot be read (nothing changes then). Settings the model cannot draw (a class it lacks,
        a W+ latent of another shape) are left out: the model opens with fresh settings and
        on_refused hears why."""
        restored = Workspace.load(path)
        return self.open(workspace_checkpoint(path, restored.checkpoint), restore=restored, on_failed=on_failed,
                         on_refused=on_refused)

    @staticmethod
    def _fitting(restore: Workspace | None, info: ModelInfo, on_refused) -> Workspace | None:
        """`restore` when this model can draw it, else None (and on_refused is told why)."""
        if restore is None:
            return None
        try:
            restore.check_fits(info.c_dim, info.num_ws, info.w_dim)
        except WorkspaceError as exc:
            if on_refused is not None:
                on_refused(str(exc))
            return None
        return restore

    def open_keeping_latent(self, path, on_failed: Callable[[str], None] | None = None) -> int:
        """Open a checkpoint of the same model family (a PTI-tuned copy, or its original) with the
        workspace as it is: the inverted latent stays on screen."""
        restored = Workspace.from_dict(self.workspace.to_dict())
        restored.checkpoint = str(path)
        return self.open(path, restore=restored, on_failed=on_failed)

    def newer_checkpoint(self) -> Path | None:
        """The watched run directory's newest checkpoint when it is not the open one, else None
        (also while a model is being opened, or before the run has written one)."""
        from trainer import CheckpointError
        from trainer.checkpoint import newest_checkpoint
        if self.watch_dir is None or self.info is None or "load" in self.jobs_running:
            return None
        try:
            newest = newest_checkpoint(self.watch_dir)
        except CheckpointError:
            return None
        return newest if str(newest) != self.info.path else None

    def reload_if_newer(self, on_failed: Callable[[str], None] | None = None) -> Path | None:
        """Reopen the watched run on its newer checkpoint, keeping the view; returns that file or None."""
        newest = self.newer_checkpoint()
        if newest is not None:
            self.open(self.watch_dir, keep_state=True, on_failed=on_failed)
        return newest

    def _on_model_loaded(self, info: ModelInfo, restore: Workspace | None, keep_state: bool) -> None:
        previous, ws = self.info, self.workspace
        self.blending.forget()   # the load let the partner go
        with self.held():   # every field below, then one render
            self.info = info
            if restore is not None:
                restore.checkpoint = info.path
                ws.copy_from(restore)
            elif keep_state and previous is not None and previous.num_ws == info.num_ws:
                ws.update(checkpoint=info.path)
            else:
                ws.update(checkpoint=info.path, base_ws=None, base_noise={}, photo_ws=None, photo_noise={}, grid_photo="", directions={},
                          direction_offsets={},
                          direction_layers=(0, None), cutoff=None, mix_layers=(False,) * info.num_ws,
                          class_index=min(ws.class_index, max(info.c_dim - 1, 0)),
                          truncation_center=default_truncation_center(info.c_dim, info.has_w))
            self.grid_dirty = True
            self._held_fields.add("checkpoint")   # a new model always renders, even if no field changed
            self.events.model.emit(info)
        if info.has_w and not ws.directions:
            self.compute_directions()
        if self.tune and info.has_w and self.device.split(":")[0] in ("cpu", "cuda"):   # fastest settings, after the first image
            self.run_job("render settings", lambda renderer, progress, preview: renderer.tune(progress),
                         self._on_tuned, lambda _: None, message="measuring render settings")

    def _on_tuned(self, tuned: tuple[str, bool]) -> None:
        """(what the renderer now renders with, "" when probing is off; whether pixels differ from fp32)"""
        if tuned[0]:
            self.render_settings = tuned[0]
            self.events.device.emit((self.device, self.half))
        if tuned[1]:
            self.request_render()

    def compute_directions(self, num_samples: int = 5000, num_components: int = 8) -> None:
        """Principal and class directions of the open model (cached per checkpoint on disk)."""
        if self.info is None or not self.info.has_w:
            return
        generation = self.info.generation

        def done(directions) -> None:
            if self.info is not None and generation == self.info.generation:
                self.workspace.directions = directions

        self.run_job("directions",
                     lambda renderer, progress, preview: renderer.compute_directions(num_samples, num_components,
                                                                                     progress),
                     done, message=f"computing directions from {num_samples} latents")

    def set_device(self, device: str, half: bool) -> None:
        def moved(where) -> None:
            self.device, self.half = where
            self.events.device.emit(where)
            self.request_render()

        self.run_job("device", lambda renderer, progress, preview: renderer.set_device(device, half) or
                     (renderer.device, renderer.half), moved, message=f"moving to {device}")

    # ---- what the user's actions mean ----
    def choose_grid_cell(self, row: int, col: int) -> bool:
        """A click on mixing-grid cell (row, col) makes its mix the current latent, with the row's
        seed and the column's style seed (an inverted photo's cell keeps its noise maps). False,
        and nothing changes, for a place outside the grid on screen."""
        grid, info, ws = self.last_grid, self.info, self.workspace
        if info is None or grid is None or grid.cell_ws is None:
            return False
        sources = grid_from_workspace(ws, info)
        rows, cols = min(grid.cell_ws.shape[0], len(sources.rows)), min(grid.cell_ws.shape[1], len(sources.cols))
        if not (0 <= row < rows and 0 <= col < cols):
            return False
        seed, mix_seed = sources.rows[row], sources.cols[col]   # None: the inverted photo
        changes = {"base_ws": grid.cell_ws[row, col].copy(),
                   "base_noise": dict(sources.photo_noise or {}) if None in (seed, mix_seed) else {}}
        changes.update({} if seed is None else {"seed": seed})
        changes.update({} if mix_seed is None else {"mix_seed": mix_seed})
        with self.held():   # one render for the fields
            ws.update(**changes)
        return True

    def commit_mix(self) -> None:
        """The mix on screen becomes the current latent (the Mixing panel's Commit)."""
        if self.last_result is not None and self.last_result.mixed_ws is not None:
            self.workspace.base_ws = self.last_result.mixed_ws.copy()

    def export_image(self, path, scale: int | None = 1) -> None:
        """Save the image on screen as PNG at the model's native resolution times `scale`
        (nearest neighbour: pixels stay square); None: the smallest whole factor giving at least
        256 px, as films are enlarged by default. ValueError before the first image."""
        from trainer.images import save_png
        if self.last_result is None or self.last_result.image is None:
            raise ValueError("nothing rendered yet")
        image = self.last_result.image
        save_png(path, _enlarged(image, image.shape[0], scale))

    def export_grid(self, path, enlarged: bool = False) -> None:
        """Save the mixing grid as PNG; enlarged: each pixel repeated by the smallest whole factor
        that brings a cell to at least 256 px (nearest neighbour, as the image export)."""
        from trainer.images import save_png
        if self.last_grid is None or self.last_grid.image is None:
            raise ValueError("no mixing grid rendered yet (open the Mixing panel)")
        native = self.info.img_resolution if self.info is not None else 0
        save_png(path, _enlarged(self.last_grid.image, native, None if enlarged and native else 1))

    def check_film(self, timeline, settings, cells: int = 1) -> None:
        """TimelineError when the timeline does not fit the open model, ExportError when the film
        cannot be written as set (ValueError with no model open)."""
        from trainer.film.timeline import check_timeline_for_model
        from trainer.film.video import check_export
        if self.info is None:
            raise ValueError("no model is open")
        check_timeline_for_model(timeline, self.info)
        check_export(settings, self.info.img_resolution * math.ceil(math.sqrt(cells)))

    def export_film(self,
                    timeline,                               # trainer.film.timeline.Timeline
                    settings,                               # trainer.film.video.ExportSettings (the file, size ...)
                    cells: int = 1,                         # a grid video of this many cells (seeds +1, +2 ...)
                    on_finished: Callable[[Any], None] | None = None,   # with the ExportReport
                    on_failed: Callable[[str], None] | None = None,     # "" = cancelled: nothing written
                    ) -> int:
        """Export a timeline as a film, a job on the renderer's thread; raises what check_film raises
        before anything starts."""
        self.check_film(timeline, settings, cells)
        lines = [timeline.with_seed_offset(k) if k else timeline for k in range(cells)]

        def run(renderer, progress, preview):
            from trainer.film.video import export_timeline
            frames = [renderer.timeline_renderer(line) for line in lines]
            return export_timeline(frames if cells > 1 else frames[0], settings, progress)

        return self.run_job(FILM_JOB, run, on_finished, on_failed, message=f"exporting {Path(settings.path).name}")


__all__ = ["RenderController", "InlineBackend", "Job", "GRID_FIELDS", "IMAGE_FIELDS", "FILM_JOB", "MixingGrid"]


def _enlarged(image: np.ndarray, native: int, scale: int | None) -> np.ndarray:
    """image with each pixel repeated scale times (nearest neighbour); None: the smallest whole
    factor that brings `native` pixels to at least 256, as films are enlarged by default."""
    from trainer.film.video import auto_size
    if scale is None:
        scale = auto_size(native) // native
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.ascontiguousarray(image)
