"""The render controller: from workspace changes to render requests, from results to what is shown.

Qt-free. It owns the bookkeeping the window used to hold: request ids, which workspace field asks
for which render, dropping results older than the one on screen, opening models (the workspace is
set in one piece, then rendered once), and long jobs with progress, previews and cancel. Work goes
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
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainer.latents import LatentState

from .events import EmitterGroup
from .renderer import MixingGrid, ModelInfo, Renderer, RenderRequest, RenderResult, request_from_workspace
from .workspace import Workspace

# Which workspace fields ask for which render. `directions` (the list of sliders) asks for none:
# only the offsets move the image.
GRID_FIELDS = frozenset({"class_index", "psi", "cutoff", "truncation_center", "noise_mode", "mix_layers",
                         "grid_row_seeds", "grid_col_seeds", "direction_offsets", "direction_layers",
                         "photo_ws", "grid_photo"})
IMAGE_FIELDS = (GRID_FIELDS - {"grid_row_seeds", "grid_col_seeds", "photo_ws", "grid_photo"}) \
    | {"seed", "z_threshold", "mix_seed", "base_ws"}

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
                 ):
        self.workspace = workspace
        self.backend = backend
        self.device, self.half = device, half
        self.render_per_field = render_per_field
        self.events = EmitterGroup(["model", "image", "grid", "render_error", "grid_error", "job_progress",
                                    "job_failed", "jobs_changed", "device"])
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
        self._next_id = 0
        self._held = 0
        self._held_fields: set[str] = set()
        self._handlers: dict[int, _JobHandlers] = {}
        self._next_token = 0
        workspace.events.changed.connect(self._on_workspace_changed)

    @classmethod
    def inline(cls, workspace: Workspace, renderer: Renderer, **options) -> "RenderController":
        """A controller whose work runs at once on the calling thread (scripts, tests, benchmarks)."""
        backend = InlineBackend(renderer)
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
        self.backend.submit(request_from_workspace(self.workspace, self.info, self.requested_id))

    def show_latent(self, latent: LatentState) -> int:
        """Render an arbitrary latent state as the image on screen (a timeline frame under the
        cursor) without changing the workspace. Returns the request id."""
        if self.info is None:
            raise ValueError("no model is open")
        self.requested_id = self._new_id()
        self.renders_requested += 1
        self.backend.submit(RenderRequest(self.requested_id, self.info.generation, latent))
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
        self.backend.submit(request_from_workspace(self.workspace, self.info, self.requested_grid_id, grid=True))

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
             ) -> int:
        """Open a checkpoint on the backend; the open model stays until the new one is ready."""
        path = Path(path)

        def loaded(info: ModelInfo) -> None:
            self._on_model_loaded(info, restore, keep_state)

        return self.run_job("load", lambda renderer, progress, preview: renderer.load(path, progress),
                            loaded, on_failed, message=f"opening {path.name}")

    def _on_model_loaded(self, info: ModelInfo, restore: Workspace | None, keep_state: bool) -> None:
        previous, ws = self.info, self.workspace
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
                          truncation_center="class" if info.c_dim and info.has_w else "global")
            self.grid_dirty = True
            self._held_fields.add("checkpoint")   # a new model always renders, even if no field changed
            self.events.model.emit(info)
        if info.has_w and not ws.directions:
            self.compute_directions()

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


class InlineBackend:
    """A backend that runs everything at once on the calling thread (scripts, tests, benchmarks)."""

    def __init__(self, renderer: Renderer):
        self.renderer = renderer
        self.controller: RenderController | None = None   # set by the controller's owner

    def submit(self, request: RenderRequest) -> None:
        result = self.renderer.render(request)
        (self.controller.on_grid_rendered if request.is_grid else self.controller.on_rendered)(result)

    def submit_job(self, job: Job) -> None:
        from .renderer import Cancelled
        try:
            result = job.run(self.renderer, lambda f, m: self.controller.on_job_progress(job.name, job.token, f, m),
                             lambda payload: self.controller.on_job_preview(job.name, job.token, payload))
        except Cancelled:
            self.controller.on_job_failed(job.name, job.token, "")
        except Exception as exc:
            self.controller.on_job_failed(job.name, job.token, str(exc) or type(exc).__name__)
        else:
            self.controller.on_job_finished(job.name, job.token, result)

    def cancel(self) -> None:
        pass

    def is_idle(self) -> bool:
        return True


__all__ = ["RenderController", "InlineBackend", "Job", "GRID_FIELDS", "IMAGE_FIELDS", "MixingGrid"]
