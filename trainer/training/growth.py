"""Progressive growing as a schedule of the GAN task (Karras et al., 2018): the level of detail
`lod` (trainer.models.growing) is a pure function of the images shown, as NVlabs'
TrainingSchedule: from the start resolution (4x4, or `grow_start` as NVlabs'
lod_initial_resolution), each phase trains `grow_kimg` stable, then fades the next resolution in
over `fade_kimg`. A resume at any image count, mid-fade included, continues
exactly. Real images go through the same level (NVlabs' process_reals)."""
from __future__ import annotations

import dataclasses
import math

import torch

from trainer.config import ConfigError, RunConfig
from trainer.models.growing import downscale_avg, is_progressive, level, max_lod, set_lod, upscale_nearest


def start_lod(img_resolution: int, start_resolution: int = 4) -> int:
    """The lod a run starts at: log2(img_resolution / start_resolution) (max_lod from 4x4)."""
    if start_resolution < 4 or start_resolution & (start_resolution - 1) or start_resolution > img_resolution:
        raise ConfigError(f"--grow-start {start_resolution}: growing starts at a power of two from 4 up to the "
                          f"resolution ({img_resolution})")
    return max_lod(img_resolution) - max_lod(start_resolution)


def schedule_lod(kimg: float, img_resolution: int, grow_kimg: float, fade_kimg: float,
                 start_resolution: int = 4) -> float:
    """The lod after `kimg` thousand images: that of start_resolution at first, 0 once fully grown."""
    lod = float(start_lod(img_resolution, start_resolution))
    phase = grow_kimg + fade_kimg
    if phase <= 0:
        return 0.0
    index = math.floor(kimg / phase)
    into = kimg - index * phase
    lod -= index
    if fade_kimg > 0:
        lod -= max(into - grow_kimg, 0.0) / fade_kimg
    return max(lod, 0.0)


def fade_reals(img: torch.Tensor, lod: float) -> torch.Tensor:
    """Real images [N, C, H, W] as D should see them at `lod`: lerped with their 2x2 averages by
    the fraction of the fade still to go, at img_resolution / 2**floor(lod), upsampled back."""
    halvings, alpha = level(lod)
    x = downscale_avg(img, 2 ** halvings)
    if alpha < 1:
        x = x + (upscale_nearest(downscale_avg(x, 2), 2) - x) * (1 - alpha)
    return upscale_nearest(x, 2 ** halvings)


def growth_scalars(img_resolution: int, lod: float) -> dict[str, float]:
    """The scalars the monitor plots: the resolution of the moment and the fade-in alpha (1: fully in)."""
    halvings, alpha = level(lod)
    return {"progress/resolution": float(img_resolution >> halvings), "progress/alpha": alpha}


@dataclasses.dataclass
class Growth:
    """The GAN task's schedule: before each step, `before_step(nimg)` sets lod on G, G_ema and D
    and returns the scalars; `fade_reals` blends that step's real images the same way."""
    img_resolution: int
    grow_kimg: float
    fade_kimg: float
    nets: tuple          # the modules whose progressive parts follow the schedule
    start_resolution: int = 4
    lod: float = 0.0

    def before_step(self, nimg: int) -> dict[str, float]:
        self.lod = schedule_lod(nimg / 1000, self.img_resolution, self.grow_kimg, self.fade_kimg,
                                self.start_resolution)
        set_lod(self.lod, *self.nets)
        return self.scalars()

    def scalars(self) -> dict[str, float]:
        return growth_scalars(self.img_resolution, self.lod)

    def fade_reals(self, img: torch.Tensor) -> torch.Tensor:
        return fade_reals(img, self.lod)


def growing(train) -> bool:
    return train.grow_kimg > 0 or train.fade_kimg > 0


def make_growth(cfg: RunConfig, *nets) -> Growth | None:
    """The schedule for a run that grows (set at its image count 0), else None."""
    if not growing(cfg.train):
        return None
    for net in nets:
        if not is_progressive(net):
            raise ConfigError(f"--grow-kimg/--fade-kimg: {cfg.model.arch} does not grow ({type(net).__name__} "
                              "has no lod); use a progressive architecture (progan, stylegan1)")
    growth = Growth(cfg.model.img_resolution, cfg.train.grow_kimg, cfg.train.fade_kimg, nets, cfg.train.grow_start)
    growth.before_step(0)
    return growth


def check_growth(cfg: RunConfig) -> None:
    """ConfigError, before the run starts, for growing on an architecture without `lod`
    (its G is built on the meta device, so nothing is allocated)."""
    if not growing(cfg.train):
        return
    from trainer.models import build_generator
    m = dataclasses.replace(cfg.model, img_resolution=cfg.data.resolution, img_channels=cfg.data.channels or 1)
    try:
        with torch.device("meta"):
            G = build_generator(m)
    except Exception:   # noqa: BLE001 - a combination the model refuses: the run reports it in its own words
        return
    if not is_progressive(G):
        raise ConfigError(f"--grow-kimg/--fade-kimg: {m.arch} does not grow (its G has no lod); use a "
                          "progressive architecture (progan, stylegan1)")
    start_lod(m.img_resolution, cfg.train.grow_start)
