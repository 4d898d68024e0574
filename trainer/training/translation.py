"""The image-to-image task of the run loop: Pix2Pix on pairs, CycleGAN on two unpaired domains.
Its models and optimisers, the step math of trainer.training.translation_steps, the image
pool, the learning-rate decay, sample strips of held-out images, the exported generator(s)
and the held-out metrics of trainer.metrics.translation."""
from __future__ import annotations

import math

import numpy as np
import torch

from trainer.checkpoint import export_generator
from trainer.config import ConfigError, RunConfig
from trainer.data.datasets import DataError
from trainer.data.paired import TranslationData, TranslationSampler, held_out_config, load_translation_data
from trainer.images import make_grid, to_uint8
from trainer.models import build_discriminator, build_generator
from trainer.training import distributed
from trainer.training.precision import Precision, maybe_compile
from trainer.training.task import AdversarialTask, check_metric_names
from trainer.training.translation_steps import CycleForward, ImagePool, PairedCritics, TranslationSteps


def resolve_config(cfg: RunConfig, data: TranslationData) -> RunConfig:
    """Shapes from the data (input and output follow the direction); the schedule in absolute kimg."""
    m, t = cfg.model, cfg.train
    m.img_resolution = data.resolution
    a, b = int(data.a.shape[1]), int(data.b.shape[1])
    m.in_channels, m.out_channels = (a, b) if m.direction == "AtoB" else (b, a)
    if m.arch == "pix2pix" and not data.paired:
        raise DataError(f"'{data.name}' is unpaired; Pix2Pix needs pairs (use --preset cyclegan)")
    if m.arch == "pix2pix" and 2 ** int(round(math.log2(m.img_resolution))) != m.img_resolution:
        raise ConfigError(f"--resolution {m.img_resolution}: the U-Net needs a power of two (32, 64, 128, 256)")
    if t.constant_kimg == 0 and t.decay_kimg == 0:   # the reference: half constant, half decaying
        t.constant_kimg, t.decay_kimg = t.kimg / 2, t.kimg / 2
    return cfg


class TranslationTask(AdversarialTask, TranslationSteps):
    @staticmethod
    def check(cfg: RunConfig, world: int) -> None:
        """What the options alone tell, before a run directory exists: ConfigError with a message."""
        if cfg.model.arch == "pix2pix" and cfg.data.source == "sneakers2boots":
            raise ConfigError("sneakers2boots is unpaired: train it with --preset cyclegan")
        distributed.layout(cfg.train.batch, 0, world)   # each process takes an equal share of the batch
        from trainer.metrics.translation import parse_translation_metrics
        check_metric_names(cfg.train.metrics, parse_translation_metrics)

    def build(self, cfg: RunConfig) -> None:
        t = cfg.train
        self.cyclegan = cfg.model.arch == "cyclegan"
        self.data = load_translation_data(cfg.data, paired=not self.cyclegan)
        self._note_skipped(self.data.skipped)
        self.cfg = resolve_config(cfg, self.data)
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        m = self.cfg.model
        self.precision = Precision(t.precision, t.channels_last, self.device)
        self.G = self.precision.prepare(build_generator(m).to(self.device).train())
        self.D = self.precision.prepare(build_discriminator(m).to(self.device).train())
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=t.g_lr, betas=(t.beta1, t.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.d_lr, betas=(t.beta1, t.beta2))
        self.scaler_G, self.scaler_D = self.precision.scaler(), self.precision.scaler()
        self.sampler = TranslationSampler(self.data, t.batch, t.seed, cfg.data.xflip, self.device)
        self.pools = (ImagePool(t.pool_size), ImagePool(t.pool_size))   # fakes of A, fakes of B
        self.step, self.nimg = 0, 0
        # What DDP wraps: each network's training forward, used through DDP only while it learns
        identity = t.identity_weight > 0 and m.in_channels == m.out_channels   # only between like channels
        G_train = CycleForward(self.G, identity) if self.cyclegan else self.G
        self.D_critics = PairedCritics(self.D) if self.cyclegan else self.D
        self.G_fast = maybe_compile(distributed.wrap(G_train, self.ranks, self.device), t.compile, self.log)
        self.D_fast = maybe_compile(distributed.wrap(self.D_critics, self.ranks, self.device), t.compile, self.log)
        self.sample_a, self.sample_b = self._sample_inputs()

    def _sample_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed held-out images for the sample strips (training images when there is no test part)."""
        n = self.cfg.train.grid_size
        try:
            held = load_translation_data(held_out_config(self.cfg.data, n), paired=not self.cyclegan)
        except DataError:
            held = self.data
        to_float = lambda x: x[:n].to(self.device, torch.float32) / 127.5 - 1   # noqa: E731
        return to_float(held.a), to_float(held.b)

    def describe(self) -> str:
        return f"{len(self.data.a)} A and {len(self.data.b)} B images"

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pool_a": self.pools[0].state(), "pool_b": self.pools[1].state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pools[0].load(state["pool_a"], self.device)
        self.pools[1].load(state["pool_b"], self.device)

    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_image(self) -> np.ndarray:
        """The sample strip: columns of held-out inputs; rows input | output | target (Pix2Pix),
        or A | A->B | A->B->A and B | B->A | B->A->B (CycleGAN). uint8 [rows * R, n * R, 3]."""
        was_training = self.G.training
        self.G.eval()
        try:
            if self.cyclegan:
                a, b = self.sample_a, self.sample_b
                n = min(len(a), len(b))
                a, b = a[:n], b[:n]
                rows = [a, self.G.a_to_b(a), self.G.round_trip(a, "AtoB"),
                        b, self.G.b_to_a(b), self.G.round_trip(b, "BtoA")]
            else:
                inputs, targets = ((self.sample_a, self.sample_b) if self.cfg.model.direction == "AtoB"
                                   else (self.sample_b, self.sample_a))
                rows = [inputs, self.G(inputs), targets]
        finally:
            self.G.train(was_training)
        images = np.concatenate([to_uint8(row) for row in rows])
        return make_grid(images, len(rows[0]))

    def export(self, path) -> None:
        m = self.cfg.model
        extra = {"direction": m.direction, "in_channels": str(m.in_channels), "out_channels": str(m.out_channels),
                 "resolution": str(m.img_resolution), "paired": str(self.data.paired).lower()}
        if self.cyclegan:
            extra["generators"] = "a_to_b,b_to_a"
        export_generator(self.G, path, m, self.step, self.kimg, self.data.describe(), extra)

    def run_metrics(self, writer) -> None:
        """The held-out metrics as `metric` lines, computed by the main process alone."""
        if not self.ranks.is_main:
            return
        from trainer.metrics.translation import evaluate_translation
        t = self.cfg.train
        results = evaluate_translation(self.G, self.cfg, self.device, t.metrics, t.metrics_images,
                                       progress=self.progress)
        for name, value in results.items():
            features = ("inception-2015-12-05 against held-out targets" if name.endswith("fid")
                        else "pixels of held-out images")
            writer.write("metric", self.step, self.kimg, name=name, value=value, num_samples=t.metrics_images,
                         features=features)
