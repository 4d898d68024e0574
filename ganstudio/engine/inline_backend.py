"""The backend of scripts, tests and benchmarks: everything the controller sends runs at once on the
calling thread (the app's is the Qt worker, widgets/worker.py)."""
from __future__ import annotations

from .renderer import Cancelled, Renderer, RenderRequest


class InlineBackend:
    """A backend that runs everything at once on the calling thread (scripts, tests, benchmarks)."""

    def __init__(self, renderer: Renderer):
        self.renderer = renderer
        self.controller = None   # the RenderController, set by the controller's owner

    def submit(self, request: RenderRequest) -> None:
        result = self.renderer.render(request)
        (self.controller.on_grid_rendered if request.is_grid else self.controller.on_rendered)(result)

    def submit_job(self, job) -> None:   # a controller.Job
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
