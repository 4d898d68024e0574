"""The training loop: n_critic D steps per G step, lazy R1 and path-length regularisation,
EMA of G, sample grids, run log, checkpoints and exact resume.

A run stops cleanly on Ctrl-C or SIGTERM (between steps, after saving), and stops with a
clear message when a loss turns NaN or explodes, leaving the last good checkpoint untouched.
"""
from __future__ import annotations

import copy
import math
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.training import distributed
from trainer.training.augment import parse_policy
from trainer.checkpoint import export_generator, load_state, save_state
from trainer.config import ConfigError, RunConfig, config_changes
from trainer.data.datasets import TOY_STD, BatchSampler, Dataset, load_dataset
from trainer.device import select_device
from trainer.training.diversity import Remedies, build_packed
from trainer.training.diversity import check_options as check_diversity_options
from trainer.training.gan_steps import GanSteps, GeneratorForTraining
from trainer.training.precision import Precision, maybe_compile
from trainer.files import atomic_write, new_run_dir  # noqa: F401 (new_run_dir: part of the loop's API)
from trainer.events import EventWriter
from trainer.images import make_grid, save_png, scatter_image, to_uint8
from trainer.models import build_discriminator, build_generator


class TrainingFailed(RuntimeError):
    """The run could not go on (NaN, exploding loss, unwritable disk); the message says why."""


@dataclass
class RunResult:
    run_dir: Path
    state: str            # "finished" | "stopped" | "failed"
    step: int
    kimg: float
    message: str = ""


def resolve_config(cfg: RunConfig, dataset: Dataset) -> RunConfig:
    """Fill the model's shape from the data; check the combination makes sense."""
    m = cfg.model
    if dataset.is_image:
        if m.arch == "mlp":
            raise ValueError(f"the mlp architecture is for 2-D points; '{dataset.name}' holds images "
                             "(use dcgan or stylegan2)")
        m.img_resolution, m.img_channels = dataset.resolution, dataset.channels
    else:
        if m.arch != "mlp":
            raise ValueError(f"'{dataset.name}' holds 2-D points; use the mlp architecture (e.g. --preset toy-gan)")
        m.img_resolution, m.img_channels = 0, dataset.channels
    m.c_dim = len(dataset.class_names) if cfg.data.conditional else 0
    if cfg.train.loss == "wgan-gp" and m.arch == "dcgan" and m.d_norm == "batch":
        raise ValueError("WGAN-GP penalises per-sample gradients, which batch norm in the critic mixes "
                         "across the batch: use --d-norm layer or none")
    parse_policy(cfg.train.augment)
    check_diversity_options(cfg.train, m)
    return cfg


class _StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag checked between steps; a second Ctrl-C aborts."""

    def __init__(self, event: threading.Event | None):
        self.event = event or threading.Event()
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self):
        return self.event.is_set()


class Trainer(GanSteps):
    def __init__(self, cfg: RunConfig, run_dir, resume: bool = False, progress: bool = True,
                 stop_event: threading.Event | None = None, log=print):
        self.run_dir = Path(run_dir)
        self.progress, self.stop_event, self.log = progress, stop_event, log
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.ranks, rank_device = distributed.start(t.device)
        self.device = rank_device or select_device(t.device)
        self.dataset = load_dataset(cfg.data)
        if self.dataset.skipped and self.ranks.is_main:
            self.log(f"skipped {len(self.dataset.skipped)} unreadable file(s), e.g. "
                     f"{self.dataset.skipped[0][0]} ({self.dataset.skipped[0][1]})")
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
        self.remedies = Remedies(self.cfg, self.G, self.D)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = self._optimizer(self.G, t.g_lr)
        self.opt_D = self._optimizer(self.D, t.d_lr)
        self.scaler_G, self.scaler_D = self.precision.scaler(), self.precision.scaler()
        self.sampler = BatchSampler(self.dataset, t.batch, t.seed, cfg.data.xflip, self.device,
                                    self.ranks.rank, self.ranks.world)
        self.policy = parse_policy(t.augment)
        self.style_based = getattr(self.G, "num_ws", 0) > 0
        self.step, self.nimg, self.d_steps, self.elapsed = 0, 0, 0, 0.0
        self.pl_mean = torch.zeros([], device=self.device)
        self.last_checkpoint = ""
        self.resume_changes: list[str] = []   # settings that differ from the resumed state's, for the log
        if self.ranks.is_main:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            (self.run_dir / "checkpoints").mkdir(exist_ok=True)
            (self.run_dir / "state").mkdir(exist_ok=True)
        if resume:   # rank 0 reads the state; the others receive it
            self._load_state(distributed.from_main(self.ranks, lambda: load_state(self.run_dir / "state" / "last.pt")))
        if self.ranks.is_main:
            atomic_write(self.run_dir / "config.json",
                         lambda tmp: Path(tmp).write_text(self.cfg.to_json() + "\n", encoding="utf-8"))
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

    # -----------------------------------------------------------------------------------------
    def _optimizer(self, module, lr):
        t = self.cfg.train
        if t.optimizer == "rmsprop":
            return torch.optim.RMSprop(module.parameters(), lr=lr)
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(t.beta1, t.beta2))

    # -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                 "rng_cpu": torch.get_rng_state(), "sampler": self.sampler.state_dict(),
                 "step": self.step, "nimg": self.nimg, "d_steps": self.d_steps, "elapsed": self._elapsed(),
                 "pl_mean": self.pl_mean.detach().cpu(), "config": self.cfg.to_json(),
                 "last_checkpoint": self.last_checkpoint, "remedies": self.remedies.state_dict(),
                 "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict()}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _load_state(self, state: dict):
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self.sampler.load_state_dict(state["sampler"])
        self.step, self.nimg, self.d_steps = int(state["step"]), int(state["nimg"]), int(state["d_steps"])
        self.elapsed = float(state["elapsed"])
        self.pl_mean = state["pl_mean"].to(self.device)
        self.last_checkpoint = state.get("last_checkpoint", "")
        self.remedies.load_state_dict(state.get("remedies", {}))
        # What the resume changes (--precision, or an edited config.json): said in the run log, so
        # the log stays the run's history
        try:
            self.resume_changes = config_changes(RunConfig.from_json(state.get("config", "")), self.cfg)
        except (ConfigError, TypeError):   # a state from an older version: nothing to compare with
            self.resume_changes = []
        for name, scaler in (("scaler_G", self.scaler_G), ("scaler_D", self.scaler_D)):
            if state.get(name) and scaler.is_enabled():   # fp16's loss scale carries over
                scaler.load_state_dict(state[name])

    def _elapsed(self) -> float:
        return self.writer.elapsed() if getattr(self, "writer", None) else self.elapsed

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self):
        if not self.ranks.is_main:
            return
        path = f"samples/step-{self.step:06d}.png"
        out = []
        for z, c in zip(self.grid_z.split(256), (self.grid_c.split(256) if self.grid_c is not None
                                                  else [None] * len(self.grid_z.split(256)))):
            out.append(self.G_ema(z, c))
        images = torch.cat(out)
        if self.dataset.is_image:
            grid = make_grid(to_uint8(images), self.cfg.train.grid_size)
        else:
            reference = self.dataset.data[:2000].numpy()
            extent = float(np.abs(self.dataset.modes).max() + 1.0) if self.dataset.modes is not None else None
            grid = scatter_image(images.cpu().numpy(), reference, extent=extent)
        save_png(self.run_dir / path, grid)
        self.writer.write("samples", self.step, self.kimg, path=path)

    def write_snapshot(self):
        """Checkpoint export and resume state, each written atomically; weights must be finite."""
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            if not all(torch.isfinite(p).all() for p in module.parameters()):
                raise TrainingFailed(f"{name}'s weights are not finite at step {self.step}; "
                                     f"not saving over {self.last_checkpoint or 'the last checkpoint'}")
        if not self.ranks.is_main:   # the check above ran on every rank, so all fail together
            return
        path = f"checkpoints/step-{self.step:06d}.safetensors"
        export_generator(self.G_ema, self.run_dir / path, self.cfg.model, self.step, self.kimg,
                         self.dataset.describe())
        self.last_checkpoint = path
        save_state(self.run_dir / "state" / "last.pt", self.state_dict())
        self.writer.write("checkpoint", self.step, self.kimg, path=path)

    def _problem(self, stats: dict[str, float]) -> str:
        """Why the run cannot go on after these statistics ("" when it can)."""
        for name, value in stats.items():
            if not math.isfinite(value):
                return f"{name} became {value} at step {self.step}"
            if name.startswith("loss/") and abs(value) > self.cfg.train.explode_threshold:
                return (f"{name} exploded to {value:.3g} at step {self.step} "
                        f"(threshold {self.cfg.train.explode_threshold:g})")
        return ""

    # -----------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        t = self.cfg.train
        total = int(round(t.kimg * 1000))
        resumed = self.step > 0
        if resumed and self.nimg >= total:   # before the log says "running" again
            raise ValueError(f"the run is already at {self.kimg:.3f} kimg, so --kimg {t.kimg:g} trains nothing "
                             "more: give a larger --kimg to continue it")
        self.writer = (EventWriter(self.run_dir / "events.jsonl", elapsed=self.elapsed) if self.ranks.is_main
                       else distributed.SilentWriter(self.elapsed))
        where = self.device.type + (f" x {self.ranks.world} processes" if self.ranks.active else "")
        self.writer.write("status", self.step, self.kimg, state="running",
                          message=(f"resumed at step {self.step}" if resumed else "started") +
                          f" on {where}; {len(self.dataset)} training items" +
                          (f"; changed since the state was saved: {', '.join(self.resume_changes)}"
                           if self.resume_changes else ""))
        bar = None
        if self.progress and self.ranks.is_main:
            from tqdm import tqdm
            bar = tqdm(total=round(t.kimg, 3), initial=min(round(self.kimg, 3), round(t.kimg, 3)), unit="kimg",
                       dynamic_ncols=True, mininterval=0.5,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        tick_time, tick_nimg = time.time(), self.nimg
        state, message = "finished", ""
        try:
            with _StopRequest(self.stop_event) as stop:
                if not resumed:
                    self.write_samples()
                while self.nimg < total:
                    if distributed.any_rank(self.ranks, bool(stop), self.device):   # Ctrl-C on any rank stops all
                        state, message = "stopped", f"stopped at step {self.step} on request"
                        break
                    before = self.nimg
                    stats = self.train_step()
                    problem = self._problem(stats)
                    if distributed.any_rank(self.ranks, bool(problem), self.device):
                        raise TrainingFailed(problem or f"another process's losses diverged at step {self.step}")
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v
                        counts[k] = counts.get(k, 0) + 1
                    if self.step % t.log_every == 0:
                        now = time.time()
                        values = distributed.mean_values(self.ranks, {k: sums[k] / counts[k] for k in sums},
                                                         self.device)
                        values["lr/G"] = self.opt_G.param_groups[0]["lr"]
                        values["lr/D"] = self.opt_D.param_groups[0]["lr"]
                        values["speed/img_s"] = (self.nimg - tick_nimg) / max(now - tick_time, 1e-9)
                        self.writer.write("scalars", self.step, self.kimg, values=values)
                        sums, counts, tick_time, tick_nimg = {}, {}, now, self.nimg
                        if bar is not None:
                            bar.set_postfix_str(f"D {values['loss/D']:.3f} G {values['loss/G']:.3f} "
                                                f"{values['speed/img_s']:.0f} img/s")
                    if bar is not None:   # set, not added: summed float steps crept past the total
                        bar.n = min(round(self.kimg, 3), bar.total)
                        bar.update(0)   # redraws at most every mininterval
                    if _crossed(before, self.nimg, t.sample_kimg):
                        self.write_samples()
                    if _crossed(before, self.nimg, t.snapshot_kimg) and self.nimg < total:
                        self.write_snapshot()
                    if t.metrics and t.metrics_kimg and _crossed(before, self.nimg, t.metrics_kimg) \
                            and self.nimg < total:
                        self._run_metrics()
                self.write_samples()
                self.write_snapshot()
                if state == "finished" and t.metrics:
                    self._run_metrics()
        except TrainingFailed as exc:
            state = "failed"
            message = f"{exc}. The last good checkpoint is {self.last_checkpoint or 'none (no checkpoint yet)'}."
        except OSError as exc:  # e.g. a full disk: the previous files are intact (atomic writes)
            state = "failed"
            message = (f"could not write to {self.run_dir}: {exc}. The last good checkpoint is "
                       f"{self.last_checkpoint or 'none'}; free space and resume with --resume.")
        except BaseException as exc:  # anything else (CUDA out of memory, a bug): the log says so, then it rises
            self._end_log("failed", f"{type(exc).__name__}: {exc}. The last good checkpoint is "
                                    f"{self.last_checkpoint or 'none'}; resume with --resume.")
            raise
        finally:
            if bar is not None:
                bar.close()
        self._end_log(state, message or "finished")
        return RunResult(self.run_dir, state, self.step, self.kimg, message)

    def _end_log(self, state: str, message: str) -> None:
        """The last status line, so the monitor never shows a dead run as running; then close."""
        try:
            self.writer.write("status", self.step, self.kimg, state=state, message=message)
        except OSError:
            pass
        self.writer.close()

    def _run_metrics(self):
        """Metrics inform; they never end a run. Expected failures are logged per metric by
        log_training_metrics; anything else (a bug, a missing package) is logged here. Every rank
        calls it: the ranks share the feature extraction."""
        try:
            from trainer.metrics.training import log_training_metrics
            log_training_metrics(self)
        except Exception as exc:  # noqa: BLE001 - the run and its checkpoints matter more
            message = f"{type(exc).__name__}: {exc}"
            self.writer.write("metric", self.step, self.kimg, name="error", value=math.nan, error=message)
            self.log(f"metrics failed, training goes on: {message}")


def _crossed(before: int, after: int, every_kimg: float) -> bool:
    if every_kimg <= 0:
        return False
    every = every_kimg * 1000
    return math.floor(after / every) > math.floor(before / every)


# What a resumed run may change: when it ends, what it writes and where it runs. Everything else
# (data, model, losses, learning rates, seed) would make it a different run, not a continuation.
RESUME_OVERRIDABLE = ("kimg", "metrics", "metrics_kimg", "sample_kimg", "snapshot_kimg", "log_every",
                      "threads", "device", "precision", "channels_last", "compile")


def train(cfg: RunConfig | None = None, outdir=None, run_dir=None, resume: bool = False,
          kimg: float | None = None, resume_overrides: dict | None = None, **kwargs) -> RunResult:
    """Start a run in a new numbered directory under `outdir`, or resume the one at `run_dir`
    with its saved config (`kimg`, when given, moves its end; `resume_overrides` may change the
    train fields named in RESUME_OVERRIDABLE). Under torchrun every process calls this; rank 0
    alone reads and writes the run directory."""
    if resume:
        for name in resume_overrides or {}:   # checked first: no file is read for a refused change
            if name not in RESUME_OVERRIDABLE:
                raise ValueError(f"--{name.replace('_', '-')} cannot change when resuming: the run would no "
                                 f"longer continue the same training (changeable: "
                                 f"{', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDABLE)})")
    joined = distributed.ranks_from_environment().active and not torch.distributed.is_initialized()
    ranks, _ = distributed.start(_requested_device(cfg, run_dir if resume else None, resume_overrides))
    try:
        if resume:
            run_dir = Path(run_dir)
            cfg = RunConfig.from_json(distributed.from_main(ranks, lambda: _read_run_config(run_dir)))
            for name, value in (resume_overrides or {}).items():
                setattr(cfg.train, name, value)
        if kimg is not None:
            cfg.train.kimg = float(kimg)
        cfg.validate()   # options are checked before anything is written
        if cfg.data.source not in TOY_STD and cfg.data.resolution < 4:   # 2-D point data have no resolution
            raise ConfigError(f"--resolution {cfg.data.resolution}: must be at least 4 for image data")
        distributed.layout(cfg.train.batch, cfg.train.batch_gpu, ranks.world)   # splits, before a folder exists
        created = not resume and run_dir is None
        if created:
            run_dir = Path(distributed.from_main(ranks, lambda: str(new_run_dir(outdir, cfg))))
        try:
            trainer = Trainer(cfg, run_dir, resume=resume, **kwargs)
        except BaseException:
            if created and ranks.is_main:   # a run that never started leaves no directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return trainer.run()
    finally:
        if joined:
            distributed.finish(ranks)


def _read_run_config(run_dir: Path) -> str:
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (it has no config.json)")
    return config_file.read_text(encoding="utf-8")


def _requested_device(cfg: RunConfig | None, run_dir, overrides: dict | None) -> str:
    """The device a run asks for, known before the processes connect (they pick NCCL or gloo by it)."""
    if overrides and overrides.get("device"):
        return overrides["device"]
    if cfg is not None:
        return cfg.train.device
    try:   # a resume: its saved choice, where this process can see the run directory
        return RunConfig.from_json(_read_run_config(Path(run_dir))).train.device
    except (OSError, ValueError):
        return "auto"
