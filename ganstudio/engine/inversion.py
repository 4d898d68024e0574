"""Inverting a photo in the studio, Qt-free: a frozen request in, plain results out.

`run_inversion` runs on the render worker (the thread that owns the model and the device). It
projects the photo with trainer.inversion.project, sends previews (best reconstruction so far, loss, PSNR)
as plain data, honours cancel by keeping the best latent so far, optionally tunes the generator
(PTI), and writes the inversion .npz (and the tuned checkpoint) into the studio's cache folder.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trainer.inversion.project import ProjectionSettings, Report
from trainer.inversion.pti import PTISettings

from .renderer import Cancelled, Progress

Preview = Callable[["InversionPreview"], None]   # the controller's preview channel; may raise Cancelled


@dataclass(frozen=True, eq=False)
class InversionRequest:
    """Everything one inversion needs, as plain values (it crosses to the worker thread)."""
    target: np.ndarray                   # uint8 [R, R, C]: the fitted photo at the model's size
    photo_path: str                      # where it came from ("" for a pasted image)
    photo_sha256: str
    crop: tuple[int, int, int]           # (left, top, side) in photo pixels
    notes: tuple[str, ...]               # what opening and fitting changed
    settings: ProjectionSettings
    class_index: int | None = None       # conditional models: the photo's class; None = search
    pti: PTISettings | None = None       # tune the generator afterwards; None = no
    generation: int = 0                  # the model it was made for (ModelInfo.generation)
    out_dir: str = ""                    # where the .npz (and tuned checkpoint) go; "" = the cache


@dataclass(frozen=True, eq=False)
class InversionPreview:
    """A progress report with a picture, for the GUI thread."""
    phase: str                           # "project" | "tune"
    step: int
    steps: int
    image: np.ndarray                    # uint8 [R, R, 3] the best reconstruction so far
    loss: float
    psnr: float
    ssim: float


@dataclass(frozen=True, eq=False)
class InversionOutcome:
    ws: np.ndarray                       # [num_ws, w_dim] the latent to show (base_ws)
    class_index: int | None              # the class the start came from (conditional models)
    reconstruction: np.ndarray           # uint8 [R, R, 3]
    psnr: float
    ssim: float
    steps_done: int
    cancelled: bool                      # stopped early: ws is the best latent reached
    npz_path: str
    tuned_checkpoint: str = ""           # "" without PTI (or when tuning was cancelled)
    tuned_psnr: float = 0.0
    record_psnr: tuple[float, ...] = field(default=())
    generation: int = 0
    start: str = ""                      # where the optimisation started: "encoder", "best_of_n", ...
    notes: tuple[str, ...] = ()          # for the user, e.g. why an encoder was not used
    noise: dict = field(default_factory=dict)  # layer -> [H, W] fitted noise maps ({} when not fitted)


def inversion_folder() -> Path:
    from trainer.data.datasets import cache_dir
    return cache_dir() / "inversions"


def read_inversion_images(path) -> tuple[np.ndarray, np.ndarray] | None:
    """(target, reconstruction) uint8 [R, R, 3] from an inversion .npz, or None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return _rgb(data["target"]), _rgb(data["reconstruction"])
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def run_inversion(renderer, request: InversionRequest, progress: Progress,
                  preview: Preview | None = None) -> InversionOutcome:
    """Invert on the renderer's model and device -> InversionOutcome. Raises InversionError,
    LossUnavailable or ValueError with a message for the user; Cancelled only before any step."""
    import torch
    from trainer.files import file_sha256
    from trainer.inversion.result import inversion_from_batch, save_inversion
    from trainer.inversion.project import check_invertible, project, target_tensor
    from trainer.inversion.pti import pivotal_tuning, save_tuned
    G = renderer.G
    if G is None:
        raise ValueError("open a model before inverting a photo")
    if request.generation and request.generation != renderer.generation:
        raise ValueError("the model changed since this inversion was set up; run it again")
    check_invertible(G)
    if request.target.shape != (G.img_resolution, G.img_resolution, G.img_channels):
        raise ValueError(f"the target is {request.target.shape}, the model draws "
                         f"{(G.img_resolution, G.img_resolution, G.img_channels)}")
    if renderer.half:   # half precision is for display; optimise a float32 copy, the renderer's G stays as it is
        import copy
        G = copy.deepcopy(G).float()
    device = renderer.device
    stopped = [False]

    def should_stop() -> bool:
        return stopped[0]

    def on_report(report: Report) -> None:
        phase_share = 0.8 if request.pti else 1.0
        done = report.step / report.steps
        fraction = done * phase_share if report.phase == "project" else phase_share + done * (1 - phase_share)
        try:
            progress(fraction, f"{'projecting' if report.phase == 'project' else 'tuning'}: step {report.step}"
                               f"/{report.steps}, PSNR {float(report.psnr[0]):.2f} dB")
        except Cancelled:
            stopped[0] = True   # the projector stops at its next step and keeps the best latent
        if preview is not None and report.preview is not None and not stopped[0]:
            try:
                preview(InversionPreview(report.phase, report.step, report.steps, _rgb(report.preview[0]),
                                         float(report.loss[0]), float(report.psnr[0]), float(report.ssim[0])))
            except Cancelled:
                stopped[0] = True

    progress(0.0, "finding a start")
    class_means = renderer.class_means
    targets = target_tensor(request.target, device)
    result = project(G, targets, request.settings, [request.class_index], class_means=class_means,
                     on_report=on_report, should_stop=should_stop, checkpoint_path=renderer.info.path)
    if result.steps_done == 0:
        raise Cancelled()
    checkpoint = renderer.info.path
    meta = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": file_sha256(checkpoint),
            "image": str(Path(request.photo_path).resolve()) if request.photo_path else "",
            "image_sha256": request.photo_sha256, "crop": list(request.crop), "notes": list(request.notes)}
    inv = inversion_from_batch(result, 0, request.target, meta)
    folder = Path(request.out_dir) if request.out_dir else inversion_folder()
    stem = (Path(request.photo_path).stem if request.photo_path else "pasted") + "-" + \
        hashlib.sha256(f"{request.photo_sha256}{meta['checkpoint_sha256']}{request.crop}".encode()).hexdigest()[:8]
    tuned_path, tuned_psnr = "", 0.0
    if request.pti is not None and not result.cancelled:
        noise = {k: torch.from_numpy(v[None, None]).to(device) for k, v in inv.noise.items()}
        tuned = pivotal_tuning(G, torch.from_numpy(inv.ws).to(device), targets, request.pti, noise=noise,
                               on_report=on_report, should_stop=should_stop, checkpoint_path=checkpoint)
        if not tuned.cancelled:
            tuned_path = str(folder / f"{stem}-pti.safetensors")
            save_tuned(tuned.G, tuned_path, checkpoint, request.photo_sha256, request.pti, str(folder / f"{stem}.npz"))
            tuned_psnr = tuned.psnr
            inv.meta["pti"] = {"checkpoint": tuned_path, "psnr": tuned.psnr, "ssim": tuned.ssim,
                               "locality_psnr": tuned.locality_psnr, "steps": tuned.steps_done,
                               "settings": request.pti.to_dict()}
    npz_path = folder / f"{stem}.npz"
    save_inversion(npz_path, inv)
    try:
        progress(1.0, f"inverted: PSNR {inv.meta['psnr']:.2f} dB" + (f", {tuned_psnr:.2f} dB after PTI" if tuned_path else ""))
    except Cancelled:   # a cancel that came after the steps: the result stands
        pass
    return InversionOutcome(ws=inv.ws, class_index=result.classes[0], reconstruction=_rgb(inv.reconstruction),
                            psnr=float(inv.meta["psnr"]), ssim=float(inv.meta["ssim"]),
                            steps_done=result.steps_done, cancelled=result.cancelled or stopped[0],
                            npz_path=str(npz_path), tuned_checkpoint=tuned_path, tuned_psnr=tuned_psnr,
                            record_psnr=tuple(float(v) for v in inv.record["psnr"]), generation=renderer.generation,
                            start=result.start, notes=result.notes, noise=dict(inv.noise))
