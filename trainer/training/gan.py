"""The latent GAN task of the run loop: G, D and the EMA of G, their optimisers, n_critic D steps
per G step with lazy R1 and path-length regularisation (trainer.training.gan_steps), the
remedies for mode collapse, mixed precision, sample grids and the exported generator."""
from __future__ import annotations

import copy

import numpy as np
import torch

from trainer.checkpoint import export_generator
from trainer.config import ConfigError, RunConfig
from trainer.data.datasets import TOY_STD, BatchSampler, Dataset, load_dataset
from trainer.images import make_grid, scatter_image, to_uint8
from trainer.models import ARCHS, build_discriminator, build_generator, generator_config
from trainer.models.growing import set_lod
from trainer.models.stylegan_family import magnitude_ema_beta
from trainer.training import distributed
from trainer.training.ada import SIGN_LOSSES, AdaptiveAugment
from trainer.training.augment import parse_policy
from trainer.training.diversity import Remedies, build_packed
from trainer.training.diversity import check_options as check_diversity_options
from trainer.training.gan_steps import GanSteps, GeneratorForTraining
from trainer.training.growth import check_growth, make_growth
from trainer.training.init import freeze_layers, start_from
from trainer.training.precision import Precision, maybe_compile
from trainer.training.task import AdversarialTask, check_metric_names


def resolve_config(cfg: RunConfig, dataset: Dataset) -> RunConfig:
    """Fill the model's shape from the data; check the combination makes sense."""
    m = cfg.model
    if dataset.is_image:
        if m.arch == "mlp":
            raise ValueError(f"the mlp architecture is for 2-D points; '{dataset.name}' holds images "
                             "(use dcgan, stylegan2 or stylegan3-t)")
        m.img_resolution, m.img_channels = dataset.resolution, dataset.channels
    else:
        if m.arch != "mlp":
            raise ValueError(f"'{dataset.name}' holds 2-D points; use the mlp architecture (e.g. --preset toy-gan)")
        m.img_resolution, m.img_channels = 0, dataset.channels
    m.c_dim = len(dataset.class_names) if cfg.data.conditional else 0
    if m.arch.startswith("stylegan3") and not m.magnitude_ema_beta:   # NVlabs: from the batch
        m.magnitude_ema_beta = magnitude_ema_beta(cfg.train.batch)
    if ARCHS[m.arch].configs_from_model is not None:   # the NVlabs-exact archs refuse what they cannot do
        ARCHS[m.arch].configs_from_model(m)
    if cfg.train.loss == "wgan-gp" and m.arch == "dcgan" and m.d_norm == "batch":
        raise ValueError("WGAN-GP penalises per-sample gradients, which batch norm in the critic mixes "
                         "across the batch: use --d-norm layer or none")
    if cfg.train.augment != "ada":
        parse_policy(cfg.train.augment)
    check_diversity_options(cfg.train, m)
    return cfg


def ada_kimg(t) -> float:
    """ADA's speed: --ada-kimg, else NVlabs' 500 kimg, or 100 when fine-tuning (a faster response)."""
    return t.ada_kimg or (100.0 if t.init else 500.0)


def check_ada(cfg: RunConfig) -> None:
    """ConfigError for an --augment ada the run cannot use."""
    t = cfg.train
    if t.augment != "ada":
        return
    if cfg.data.source in TOY_STD:
        raise ConfigError(f"--augment ada augments images; '{cfg.data.source}' holds 2-D points")
    if t.ada_target > 0 and t.loss not in SIGN_LOSSES:
        raise ConfigError(f"--augment ada adapts p from the sign of D's outputs on real images, which the "
                          f"{t.loss} loss does not give (use {', '.join(SIGN_LOSSES)}), or keep p fixed: "
                          "--ada-target 0 --augment-p P")


class GanTask(AdversarialTask, GanSteps):
    @staticmethod
    def check(cfg: RunConfig, world: int) -> None:
        """What the options alone tell, before a run directory exists: ConfigError with a message."""
        if cfg.data.source not in TOY_STD and cfg.data.resolution < 4:   # 2-D point data have no resolution
            raise ConfigError(f"--resolution {cfg.data.resolution}: must be at least 4 for image data")
        distributed.layout(cfg.train.batch, cfg.train.batch_gpu, world)   # the batch splits over the processes
        from trainer.metrics.compute import parse_metrics
        check_metric_names(cfg.train.metrics, parse_metrics)
        check_ada(cfg)
        check_growth(cfg)
        if cfg.model.spectral_norm and cfg.model.arch == "biggan":   # it would wrap D's layers a second time
            raise ConfigError("--spectral-norm: BigGAN's G and D have spectral norm in every layer already; "
                              "leave the option off")

    @staticmethod
    def check_new_run(cfg: RunConfig) -> None:
        """An --init source that fits nothing is refused here too, for Python callers (the CLI checked already)."""
        if cfg.train.init:
            from trainer.training.init import check_init
            check_init(cfg)

    def build(self, cfg: RunConfig) -> None:
        t = cfg.train
        self.dataset = load_dataset(cfg.data)
        self._note_skipped(self.dataset.skipped)
        self.cfg = resolve_config(cfg, self.dataset)
        # batch_gpu is saved resolved: a resume on another process count keeps the same micro-batches
        self.batch_gpu, self.rounds = distributed.layout(t.batch, t.batch_gpu, self.ranks.world)
        t.batch_gpu = self.batch_gpu
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        m = self.cfg.model
        self.precision = Precision(t.precision, t.channels_last, self.device)
        self.G = self.precision.prepare(build_generator(m).to(self.device).train())
        self.D = (build_packed(build_discriminator, m, t.pack) if t.pack > 1 else build_discriminator(m))
        self.D = self.precision.prepare(self.D.to(self.device).train())
        self.frozen = freeze_layers(self.D, t.freeze_d)   # before the optimiser and DDP see D's parameters
        self.remedies = Remedies(self.cfg, self.G, self.D)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.growth = make_growth(self.cfg, self.G, self.G_ema, self.D)   # progressive growing: lod by kimg
        self.opt_G = self._optimizer(self.G, t.g_lr)
        self.opt_D = self._optimizer(self.D, t.d_lr)
        self.scaler_G, self.scaler_D = self.precision.scaler(), self.precision.scaler()
        self.sampler = BatchSampler(self.dataset, t.batch, t.seed, cfg.data.xflip, self.device,
                                    self.ranks.rank, self.ranks.world)
        self.policy = parse_policy(t.augment) if t.augment != "ada" else []
        self.ada = (AdaptiveAugment(t.ada_pipe, t.augment_p, t.ada_target, ada_kimg(t), t.batch, self.ranks,
                                    self.device) if t.augment == "ada" else None)
        self.style_based = getattr(self.G, "num_ws", 0) > 0
        self.step, self.nimg, self.d_steps = 0, 0, 0
        self.pl_mean = torch.zeros([], device=self.device)
        self.init_report = ""   # what start_fresh copied from --init, for the start line
        # What DDP wraps: G's training forward and D, each used through DDP only while it learns
        self.G_train = GeneratorForTraining(self.G)
        self.G_ddp = distributed.wrap(self.G_train, self.ranks, self.device)
        self.D_ddp = distributed.wrap(self.D, self.ranks, self.device)
        self.G_fast = maybe_compile(self.G_ddp, t.compile, self.log)
        self.D_fast = maybe_compile(self.D_ddp, t.compile, self.log)
        # Fixed latents for the sample grids, drawn from their own generator so that writing a
        # grid never moves the training random stream (exact resume depends on that).
        gen = torch.Generator().manual_seed(t.seed + 31337)
        n = t.grid_size ** 2 if self.dataset.is_image else 2000
        self.grid_z = torch.randn(n, m.z_dim, generator=gen).to(self.device)
        rows = torch.arange(n) // t.grid_size if self.dataset.is_image else torch.arange(n)
        self.grid_c = (rows % m.c_dim).to(self.device) if m.c_dim else None

    def _optimizer(self, module, lr):
        t = self.cfg.train
        if t.optimizer == "rmsprop":
            return torch.optim.RMSprop(module.parameters(), lr=lr)
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(t.beta1, t.beta2))

    def start_fresh(self) -> None:
        """A new run (not a resume, which keeps its own weights): copy the --init source into G,
        G_ema and D."""
        if self.cfg.train.init:
            nets = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
            self.init_report = start_from(self.cfg.train.init, nets, self.log if self.ranks.is_main else lambda *_: None)
            self.remedies = Remedies(self.cfg, self.G, self.D)   # historical averages start at the copied weights
            # the source's level of detail is its schedule's, not ours: full resolution unless this run grows
            if self.growth is not None:
                self.growth.before_step(0)
            else:
                set_lod(0.0, self.G, self.G_ema, self.D)

    def describe(self) -> str:
        frozen = (f"; D's first {self.cfg.train.freeze_d} layer(s) frozen: {len(self.frozen)} tensors, "
                  f"{self.frozen[0]} to {self.frozen[-1]}" if self.frozen else "")
        return f"{len(self.dataset)} training items" + (f"; {self.init_report}" if self.init_report else "") + frozen

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), "G_ema": self.G_ema}

    def scheduled_values(self) -> dict[str, float]:
        """The learning rates and, while growing, the resolution and fade-in of the moment (a logging
        window that spans a change shows the new level, never an average such as 5.2 px)."""
        return {**super().scheduled_values(), **(self.growth.scalars() if self.growth is not None else {})}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "G_ema": self.G_ema.state_dict(), "d_steps": self.d_steps,
                "pl_mean": self.pl_mean.detach().cpu(), "remedies": self.remedies.state_dict(),
                **({"ada": self.ada.state_dict()} if self.ada else {})}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.G_ema.load_state_dict(state["G_ema"])
        self.d_steps = int(state["d_steps"])
        self.pl_mean = state["pl_mean"].to(self.device)
        self.remedies.load_state_dict(state.get("remedies", {}))
        if self.ada and "ada" in state:
            self.ada.load_state_dict(state["ada"])

    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_image(self) -> np.ndarray:
        """G_ema on the fixed latents: a grid of images, or a scatter of 2-D points over the data."""
        labels = self.grid_c.split(256) if self.grid_c is not None else [None] * len(self.grid_z.split(256))
        images = torch.cat([self.G_ema(z, c) for z, c in zip(self.grid_z.split(256), labels)])
        if self.dataset.is_image:
            return make_grid(to_uint8(images), self.cfg.train.grid_size)
        reference = self.dataset.data[:2000].numpy()
        extent = float(np.abs(self.dataset.modes).max() + 1.0) if self.dataset.modes is not None else None
        return scatter_image(images.cpu().numpy(), reference, extent=extent)

    def export(self, path) -> None:
        export_generator(self.G_ema, path, generator_config(self.cfg.model), self.step, self.kimg,
                         self.dataset.describe())

    def run_metrics(self, writer) -> None:
        """The --metrics on G_ema, as `metric` lines; every rank takes part (they share the features)."""
        from trainer.metrics.training import log_training_metrics
        self.writer = writer   # log_training_metrics writes through the object it is given
        log_training_metrics(self)
