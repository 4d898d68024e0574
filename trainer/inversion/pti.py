"""Pivotal tuning (PTI, Roich et al. 2021): after projection, fine-tune a copy of the generator's
synthesis network so the pivot latent draws the photo, with a locality regulariser that keeps the
images of latents around the pivot as the original model draws them. `save_tuned` writes the
copy as an ordinary checkpoint whose metadata adds `tuned_from` / `tuned_on`."""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from trainer.inversion.losses import DEFAULT_LOSSES, LOSS_NAMES, ReconstructionLoss, psnr, ssim
from trainer.files import parse_json, file_sha256
from trainer.inversion.project import Report, check_invertible, noise_override, to_uint8_nhwc, w_statistics


@dataclass(frozen=True, eq=False)
class PTISettings:
    """Pivotal tuning: how long and how hard to fine-tune the generator around the pivot."""
    steps: int = 300                # tuning steps (PTI: up to 350)
    lr: float = 3e-3                # Adam on the synthesis weights (PTI: 3e-4; 10x converges in 300 steps here)
    losses: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSSES))   # name -> weight
                                    # (as the projection's; detail: +2.2 dB after 100 steps on 4 demo images)
    locality: float = 0.1           # weight of the locality regulariser (0 = off; 1 halves the gain in 100 steps)
    locality_samples: int = 4       # random latents per step for it
    locality_radius: float = 0.5    # how far from the pivot they lie, in units of W's std
    stop_psnr: float = 0.0         # stop early once the pivot's PSNR reaches this (dB); 0 = never
    seed: int = 0
    report_every: int = 10

    def __post_init__(self):
        if not 1 <= int(self.steps) <= 100_000:
            raise ValueError(f"PTI steps {self.steps!r}: expected 1 to 100000")
        unknown = sorted(set(self.losses) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"unknown loss(es) {', '.join(unknown)}; known: {', '.join(LOSS_NAMES)}")
        object.__setattr__(self, "losses", {k: float(v) for k, v in self.losses.items() if float(v)})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["losses"] = dict(self.losses)
        return d


@dataclass(eq=False)
class TuningResult:
    G: torch.nn.Module                  # the tuned copy (the original is untouched)
    reconstruction: np.ndarray          # uint8 [H, W, C]
    psnr: float
    ssim: float
    locality_psnr: float                # dB between tuned and original images of random latents
    record: dict[str, np.ndarray]       # "step" [R], "loss"/"psnr"/"ssim" [R, 1]
    steps_done: int
    cancelled: bool
    seconds: float
    settings: PTISettings


def pivotal_tuning(G,
                   pivot_ws: torch.Tensor,         # [num_ws, w_dim] or [1, num_ws, w_dim], the projected latent
                   target: torch.Tensor,           # [1, C, H, W] in [-1, 1]
                   settings: PTISettings = PTISettings(),
                   noise: Mapping[str, torch.Tensor] | None = None,   # layer -> [1, 1, H, W] fitted noise
                   loss: ReconstructionLoss | None = None,
                   on_report: Callable[[Report], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   checkpoint_path: str = "",
                   ) -> TuningResult:
    """Fine-tune a copy of G's synthesis network so the pivot draws the target (PTI), keeping the
    images of latents around the pivot close to the original model's (the locality regulariser)."""
    check_invertible(G)
    started = time.perf_counter()
    device = target.device
    pivot = pivot_ws.reshape(1, G.num_ws, G.w_dim).to(device).float()
    target = target.float()
    if loss is None:
        loss = ReconstructionLoss(settings.losses, device, checkpoint_path,
                                  getattr(G, "checkpoint_info", {}).get("config"))
    tuned = copy.deepcopy(G).eval()
    tuned.requires_grad_(False)
    tuned.synthesis.requires_grad_(True)
    params = [p for p in tuned.synthesis.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    _, w_std = w_statistics(G, device)
    gen = torch.Generator(device="cpu").manual_seed(int(settings.seed))
    maps = {k: v.to(device) for k, v in (noise or {}).items()}
    record = {"step": [], "loss": [], "psnr": [], "ssim": []}
    best = (float("inf"), None)
    steps_done, cancelled = 0, False

    def nearby_latents() -> torch.Tensor:
        """Random w moved to a fixed distance from the pivot (PTI: w_p + r (w_z - w_p) / |w_z - w_p|)."""
        z = torch.randn(settings.locality_samples, G.z_dim, generator=gen).to(device)
        c = torch.randint(0, G.c_dim, (settings.locality_samples,), generator=gen).to(device) if G.c_dim else None
        with torch.no_grad():
            w = G.mapping(z, c).float()
        direction = w - pivot
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
        return pivot + settings.locality_radius * w_std * direction

    for step in range(settings.steps):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        with noise_override(tuned, maps):
            image = tuned.synthesis(pivot, noise_mode="const").float()
        rec = loss(image, target)
        total = rec.sum()
        if settings.locality and settings.locality_samples:
            near = nearby_latents()
            with torch.no_grad():
                reference = G.synthesis(near, noise_mode="const").float()
            total = total + settings.locality * (tuned.synthesis(near, noise_mode="const").float()
                                                 - reference).square().mean()
        if float(rec.detach()) < best[0]:
            best = (float(rec.detach()), {k: v.detach().clone() for k, v in tuned.synthesis.state_dict().items()})
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        steps_done = step + 1
        quality = float(psnr(image.detach(), target))
        if steps_done % settings.report_every == 0 or steps_done == settings.steps:
            record["step"].append(steps_done)
            record["loss"].append([float(rec.detach())])
            record["psnr"].append([quality])
            record["ssim"].append([float(ssim(image.detach(), target))])
            if on_report is not None:
                on_report(Report("tune", steps_done, settings.steps, np.array(record["loss"][-1]),
                                 np.array(record["psnr"][-1]), np.array(record["ssim"][-1]),
                                 to_uint8_nhwc(image)))
        if settings.stop_psnr and quality >= settings.stop_psnr:
            break
    # the last step's update is not yet measured: keep it only if it is better than the best seen
    # (the state dict is loaded outside noise_override: inside it the noise buffers hold the fitted maps)
    with torch.no_grad():
        with noise_override(tuned, maps):
            final = tuned.synthesis(pivot, noise_mode="const").float()
        if best[1] is not None and float(loss(final, target)) > best[0]:
            tuned.synthesis.load_state_dict(best[1])
            with noise_override(tuned, maps):
                final = tuned.synthesis(pivot, noise_mode="const").float()
        near = nearby_latents()
        locality = float(psnr(tuned.synthesis(near, noise_mode="const"), G.synthesis(near, noise_mode="const")).mean())
    tuned.requires_grad_(False)
    return TuningResult(tuned, to_uint8_nhwc(final)[0], float(psnr(final, target)), float(ssim(final, target)),
                        locality, {k: np.asarray(v) for k, v in record.items()}, steps_done, cancelled,
                        time.perf_counter() - started, settings)


def save_tuned(tuned: torch.nn.Module, path, source_checkpoint, image_sha256: str,
               settings: PTISettings, pivot_npz: str = "") -> None:
    """Write a PTI-tuned generator as an ordinary checkpoint (load_generator opens it) whose metadata
    adds `tuned_from` (the source checkpoint's sha256), `tuned_from_path`, `tuned_on` (the image's
    sha256), the pivot file and the settings."""
    from trainer.checkpoint import export_generator, read_checkpoint
    from trainer.models import ARCHS
    _, metadata = read_checkpoint(source_checkpoint)
    info = tuned.checkpoint_info
    extra = {"tuned_from": file_sha256(source_checkpoint), "tuned_from_path": str(Path(source_checkpoint).resolve()),
             "tuned_on": image_sha256, "tuning": json.dumps(settings.to_dict(), sort_keys=True),
             "pivot": str(pivot_npz)}
    config = ARCHS[info["config"]["arch"]].config_type.from_dict(info["config"])   # NVlabs imports have their own
    export_generator(tuned, path, config, info["step"], info["kimg"],
                     parse_json(metadata.get("dataset", "{}"), "the checkpoint's dataset metadata"), extra=extra)
