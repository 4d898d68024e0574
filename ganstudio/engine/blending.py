"""Blending the open model with a second one, live (Qt-free): the worker keeps both models' tensors
and writes the blend into the open generator in place when a render asks for another one
(trainer.models.blend.LiveBlend), so a slider drag reads no file. The open model is A: its
mapping network, w_avg, class centres and directions stay; the partner B gives the synthesis
layers above the swap resolution, by the blend amount. "Save blend" writes the same blend from
the two files as `ganstudio-train blend` does.

Views subscribe to `controller.events.blend` (the PartnerInfo, or None when blending stops)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainer.models.blend import BlendError, BlendSpec, LiveBlend, load_parent, synthesis_layers, write_blend

BLEND_JOB = "blend"
DEFAULT_SWAP = 16   # px, as `ganstudio-train blend --swap-at`


@dataclass(frozen=True)
class PartnerInfo:
    """The model blended with the open one (plain values for the widgets)."""
    path: str
    sha256: str
    generation: int                  # ModelInfo.generation of the open model it was checked against
    resolutions: tuple[int, ...]     # the resolutions the synthesis layers work at, low to high

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def swap_choices(self) -> tuple[int, ...]:
        """Where the swap may go: 0 (every layer mixes) and each resolution but the top one (all of A)."""
        return (0, *self.resolutions[:-1])

    @property
    def default_swap(self) -> int:
        choices = self.swap_choices
        return DEFAULT_SWAP if DEFAULT_SWAP in choices else choices[-1]


def open_partner(renderer, path, progress) -> PartnerInfo:
    """On the worker: read B and keep it beside the open model (refused unless they blend)."""
    G = renderer.G
    if G is None or not getattr(G, "num_ws", 0) or renderer.info.translates:
        raise BlendError("open a StyleGAN model first: blending mixes two StyleGAN generators layer by layer")
    progress(0.1, f"reading {Path(path).name}")
    partner = load_parent(path)
    config = G.checkpoint_info["config"]
    progress(0.7, "checking that the two models blend")
    try:
        renderer.partner = LiveBlend(G, config["arch"], config, partner)
    except BlendError as exc:
        raise BlendError(f"cannot blend {Path(renderer.info.path).name} (open) with {Path(partner.path).name}: "
                         f"{exc}") from None
    layers = synthesis_layers(config["arch"], config, partner.tensors)
    progress(1.0, "ready to blend")
    return PartnerInfo(partner.path, partner.sha256, renderer.generation,
                       tuple(sorted({layer.resolution for layer in layers})))


def close_partner(renderer) -> None:
    """On the worker: the open model's own tensors back in place, the partner's let go."""
    if renderer.partner is not None:
        renderer.partner.apply(renderer.G, None)
        renderer.partner = None


class BlendControl:
    """The controller's blending: which partner is open, the blend settings, the jobs."""

    def __init__(self, controller):
        self.controller = controller
        self.partner: PartnerInfo | None = None
        self.spec = BlendSpec()

    @property
    def active(self) -> bool:
        return self.partner is not None

    def request_spec(self) -> BlendSpec | None:
        """What a render request asks the worker to draw with (None: the open model as it is)."""
        return self.spec if self.partner is not None else None

    def open(self, path, on_failed: Callable[[str], None] | None = None) -> int:
        """Read a second checkpoint (file, run directory or NVlabs .pkl) on the worker and start
        blending at the swap (amount 1); a model that does not blend fails the job with the reason."""
        def opened(partner: PartnerInfo) -> None:
            info = self.controller.info
            if info is None or info.generation != partner.generation:
                return   # another model was opened meanwhile: its load dropped this partner
            self.partner = partner
            self.spec = BlendSpec(swap_at=partner.default_swap, mix=1.0)
            self.controller.events.blend.emit(partner)
            self._render()

        return self.controller.run_job(BLEND_JOB, lambda renderer, progress, preview:
                                       open_partner(renderer, path, progress), opened, on_failed,
                                       message=f"reading {Path(path).name} to blend with")

    def set(self, **changes: Any) -> None:
        """Change swap_at, mix and/or width (BlendSpec's fields) and render with them.
        BlendError for a value out of range (nothing changes then)."""
        spec = dataclasses.replace(self.spec, **changes)
        if spec != self.spec:
            self.spec = spec
            if self.partner is not None:
                self._render()

    def stop(self) -> None:
        """Back to the open model alone."""
        if self.partner is None:
            return
        self.partner = None
        self.controller.run_job(BLEND_JOB, lambda renderer, progress, preview: close_partner(renderer),
                                message="back to the open model")
        self.controller.events.blend.emit(None)
        self._render()

    def forget(self) -> None:
        """A new model opened (its load let the partner go)."""
        if self.partner is not None:
            self.partner = None
            self.controller.events.blend.emit(None)

    def save(self, path, on_finished: Callable[[dict], None] | None = None,
             on_failed: Callable[[str], None] | None = None) -> int:
        """Write the blend on screen as a checkpoint (from the two files, as `ganstudio-train blend`
        writes it); on_finished gets its `blend` record."""
        if self.partner is None or self.controller.info is None:
            raise BlendError("nothing is being blended: choose Blend with… first")
        a, b, spec = self.controller.info.path, self.partner.path, self.spec
        return self.controller.run_job(BLEND_JOB, lambda renderer, progress, preview:
                                       write_blend(load_parent(a), load_parent(b), spec, path),
                                       on_finished, on_failed, message=f"saving {Path(path).name}")

    def _render(self) -> None:
        c = self.controller
        c.request_render()
        c.grid_dirty = True
        c.request_grid()
