"""What the run loop's tasks share: a G and a D, an optimiser and a gradient scaler for each, a
batch sampler, and the counters of G steps and images shown. A task adds its own state on top."""
from __future__ import annotations

import torch

from trainer.config import ConfigError, RunConfig
from trainer.training.distributed import Ranks


def check_metric_names(spec: str, parse) -> None:
    """Refuse a --metrics the task does not know before the run starts: parse(spec) raises ValueError."""
    if spec:
        try:
            parse(spec)
        except ValueError as exc:
            raise ConfigError(f"--metrics {spec}: {exc} (leave it empty for none)") from None


class AdversarialTask:
    """A task's build(cfg) sets up G, D, opt_G, opt_D, scaler_G, scaler_D, sampler, step, nimg and cfg
    (the config with the shapes the data decide filled in)."""

    def __init__(self,
                 cfg: RunConfig,            # validated; build() fills in what the data decide
                 device: torch.device,      # this process's device
                 ranks: Ranks,              # this process in a torchrun job (one process: Ranks())
                 log=print,                 # where messages for people go
                 progress: bool = False,    # progress bars for the metrics
                 ):
        self.device, self.ranks, self.log, self.progress = device, ranks, log, progress
        self.build(cfg)

    def build(self, cfg: RunConfig) -> None:
        raise NotImplementedError

    @staticmethod
    def check_new_run(cfg: RunConfig) -> None:
        """What only a new run (not a resume) must check before its directory exists: ConfigError."""

    def start_fresh(self) -> None:
        """Called by the loop for a new run (never on resume), after build: a task that starts from
        other weights (--init) copies them here."""

    def _note_skipped(self, skipped: list) -> None:
        """Say which unreadable files the data left out (once, from the main process)."""
        if skipped and self.ranks.is_main:
            self.log(f"skipped {len(skipped)} unreadable file(s), e.g. {skipped[0][0]} ({skipped[0][1]})")

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    def scheduled_values(self) -> dict[str, float]:
        """Values a schedule sets (learning rates): logged as they are at the logging step, not averaged."""
        return {"lr/G": self.opt_G.param_groups[0]["lr"], "lr/D": self.opt_D.param_groups[0]["lr"]}

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks whose weights must be finite before a snapshot."""
        return {"G": self.G, "D": self.D}

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict(), "sampler": self.sampler.state_dict(), "step": self.step,
                "nimg": self.nimg, "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        for opt, name in ((self.opt_G, "opt_G"), (self.opt_D, "opt_D")):
            # The rates come from this run's config, not the state: an edited g_lr/d_lr in config.json
            # takes effect on resume (unchanged, they are the same numbers and the resume stays exact).
            rates = [group["lr"] for group in opt.param_groups]
            opt.load_state_dict(state[name])
            for group, rate in zip(opt.param_groups, rates):
                group["lr"] = rate
        self.sampler.load_state_dict(state["sampler"])
        self.step, self.nimg = int(state["step"]), int(state["nimg"])
        for name, scaler in (("scaler_G", self.scaler_G), ("scaler_D", self.scaler_D)):
            if state.get(name) and scaler.is_enabled():   # fp16's loss scale carries over (older states have none)
                scaler.load_state_dict(state[name])


def check_model_size(cfg) -> None:
    """ModelTooLarge (a ConfigError) when the run's G and D, at the data's resolution, would not fit
    in this machine's memory with their gradients and Adam moments: counted on the meta device,
    before the data is read or anything is allocated."""
    import dataclasses
    from trainer.checkpoint import ModelTooLarge, check_trainable_size
    from trainer.models import build_discriminator, build_generator
    m = dataclasses.replace(cfg.model)
    channels = cfg.data.channels or 3   # 0: the data decides; RGB is the larger case
    if cfg.task == "translation":
        m.img_resolution, m.in_channels, m.out_channels = cfg.data.resolution, channels, channels
    elif m.arch != "mlp":
        m.img_resolution, m.img_channels = cfg.data.resolution, channels
    what = f"--resolution {cfg.data.resolution} with the {m.arch} options given"
    try:
        check_trainable_size({"generator": lambda: build_generator(m), "discriminator": lambda: build_discriminator(m)},
                             what)
    except ModelTooLarge:
        raise
    except Exception:   # noqa: BLE001 - a combination the model refuses: the run reports it in its own words
        pass
