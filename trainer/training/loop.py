"""The run loop every kind of training shares: the run directory and its log, Ctrl-C and SIGTERM,
exact resume, the cadence of samples, snapshots and metrics (in kimg), failures, the progress
bar and the processes of a torchrun job. What is trained is a task (trainer.training.gan for
latent GANs, trainer.training.translation for Pix2Pix and CycleGAN) that the loop drives:

  task.start_fresh()                     a new run, not a resume: copy --init weights
  task.describe() -> str                 what the start line says about the data
  task.train_step() -> {name: value}     one step; it moves task.step and task.nimg
  task.scheduled_values() -> {name: v}  learning rates and the like, logged as they stand
  task.modules() -> {name: module}       weights that must be finite before a snapshot
  task.sample_image() -> uint8 [H, W, 3] the picture of samples/step-N.png
  task.export(path)                      the checkpoint of checkpoints/step-N.safetensors
  task.state_dict() / load_state_dict()  what a resume needs besides the loop's own state
  task.run_metrics(writer)               the config's metrics, as `metric` lines

A run stops cleanly on Ctrl-C or SIGTERM (between steps, after saving), and stops with a
clear message when a loss turns NaN or explodes, leaving the last good checkpoint untouched.
"""
from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.checkpoint import load_state, save_state
from trainer.config import ConfigError, RunConfig, config_changes
from trainer.data.sources import resumed_source, stored_source
from trainer.device import choose_threads, select_device
from trainer.events import EventWriter
from trainer.files import DirectoryInUse, DirectoryLock, atomic_write, new_run_dir
from trainer.images import save_png
from trainer.training import distributed
from trainer.training.gan import GanTask
from trainer.training.task import check_model_size
from trainer.training.translation import TranslationTask

TASKS = {"gan": GanTask, "translation": TranslationTask}

# What a resumed run may change: when it ends, what it writes and where it runs. Everything else
# (the preset, data, model, losses, learning rates, seed) would make it a different run, not a continuation.
RESUME_OVERRIDABLE = ("kimg", "metrics", "metrics_kimg", "metrics_images", "sample_kimg", "snapshot_kimg",
                      "log_every", "threads", "device", "precision", "channels_last", "compile")


class TrainingFailed(RuntimeError):
    """The run could not go on (NaN, exploding loss, unwritable disk); the message says why."""


@dataclass
class RunResult:
    run_dir: Path
    state: str            # "finished" | "stopped" | "failed"
    step: int
    kimg: float
    message: str = ""


class StopRequest:
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


class RunLoop:
    def __init__(self,
                 cfg: RunConfig,                             # validated; the task fills in shapes from the data
                 run_dir,                                    # the run directory (train() creates it)
                 resume: bool = False,                       # continue from run_dir/state/last.pt
                 progress: bool = True,                      # a progress bar on the terminal
                 stop_event: threading.Event | None = None,  # set it to stop between steps (None: signals only)
                 log=print,                                  # where messages for people go
                 task_class=None,                            # None: the task cfg.task names
                 ):
        self.run_dir = Path(run_dir)
        self.progress, self.stop_event, self.log = progress, stop_event, log
        threads, reason = choose_threads(cfg.train.threads, "train")
        torch.set_num_threads(threads)
        self.ranks, rank_device = distributed.start(cfg.train.device)
        if self.ranks.is_main:
            log(f"threads: {reason}")
        # One process trains in a run directory at a time: rank 0 takes its lock before anything is
        # read or written, and every rank hears a refusal
        self.lock = DirectoryLock(self.run_dir)
        refusal = distributed.from_main(self.ranks, self._lock_run_dir)
        if refusal:
            raise DirectoryInUse(refusal)
        try:
            self._open(cfg, rank_device, resume, log, progress, task_class)
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        """Give up the run directory without training (run() does this itself when it ends)."""
        self.lock.release()

    def __enter__(self) -> "RunLoop":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _lock_run_dir(self) -> str:
        """Take the run directory's lock -> "" or the refusal (the holder's pid)."""
        try:
            self.lock.acquire()
        except DirectoryInUse as exc:
            return str(exc)
        return ""

    def _open(self, cfg: RunConfig, rank_device, resume: bool, log, progress: bool, task_class) -> None:
        self.device = rank_device or select_device(cfg.train.device)
        self.task = (task_class or TASKS[cfg.task])(cfg, self.device, self.ranks, log=log, progress=progress)
        self.cfg = self.task.cfg
        self.elapsed, self.last_checkpoint = 0.0, ""
        self.resume_changes: list[str] = []   # settings that differ from the resumed state's, for the log
        self.writer = None
        if self.ranks.is_main:
            for sub in ("samples", "checkpoints", "state"):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        if resume:   # rank 0 reads the state; the others receive it
            self._load_state(distributed.from_main(self.ranks, lambda: load_state(self.run_dir / "state" / "last.pt")))
        else:
            self.task.start_fresh()
        if self.ranks.is_main:
            atomic_write(self.run_dir / "config.json",
                         lambda tmp: Path(tmp).write_text(self.cfg.to_json() + "\n", encoding="utf-8"))

    @property
    def step(self) -> int:
        return self.task.step

    @property
    def nimg(self) -> int:
        return self.task.nimg

    @property
    def kimg(self) -> float:
        return self.task.nimg / 1000

    # -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The task's state with the loop's beside it, in one flat dict (the layout both loops wrote
        before they were one, so their states still resume)."""
        state = {**self.task.state_dict(), "rng_cpu": torch.get_rng_state(), "config": self.cfg.to_json(),
                 "elapsed": self.writer.elapsed() if self.writer else self.elapsed,
                 "last_checkpoint": self.last_checkpoint}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _load_state(self, state: dict) -> None:
        self.task.load_state_dict(state)
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self.elapsed = float(state["elapsed"])
        self.last_checkpoint = state.get("last_checkpoint", "")
        # What the resume changes (--precision, or an edited config.json): said in the run log, so
        # the log stays the run's history
        try:
            self.resume_changes = config_changes(RunConfig.from_json(state.get("config", "")), self.cfg)
        except (ConfigError, TypeError):   # a state from an older version: nothing to compare with
            self.resume_changes = []

    # -----------------------------------------------------------------------------------------
    def write_samples(self) -> None:
        if not self.ranks.is_main:
            return
        path = f"samples/step-{self.step:06d}.png"
        save_png(self.run_dir / path, self.task.sample_image())
        self.writer.write("samples", self.step, self.kimg, path=path)

    def write_snapshot(self) -> None:
        """Checkpoint export and resume state, each written atomically; weights must be finite."""
        for name, module in self.task.modules().items():
            if not all(torch.isfinite(p).all() for p in module.parameters()):
                raise TrainingFailed(f"{name}'s weights are not finite at step {self.step}; "
                                     f"not saving over {self.last_checkpoint or 'the last checkpoint'}")
        if not self.ranks.is_main:   # the check above ran on every rank, so all fail together
            return
        path = f"checkpoints/step-{self.step:06d}.safetensors"
        self.task.export(self.run_dir / path)
        self.last_checkpoint = path
        save_state(self.run_dir / "state" / "last.pt", self.state_dict())
        self.writer.write("checkpoint", self.step, self.kimg, path=path)

    def _problem(self, stats: dict[str, float]) -> str:
        """Why the run cannot go on after these statistics ("" when it can)."""
        threshold = self.cfg.train.explode_threshold
        for name, value in stats.items():
            if not math.isfinite(value):
                return f"{name} became {value} at step {self.step}"
            if name.startswith("loss/") and abs(value) > threshold:
                return f"{name} exploded to {value:.3g} at step {self.step} (threshold {threshold:g})"
        return ""

    def _progress_bar(self):
        if not (self.progress and self.ranks.is_main):
            return None
        from tqdm import tqdm
        kimg = self.cfg.train.kimg
        return tqdm(total=round(kimg, 3), initial=min(round(self.kimg, 3), round(kimg, 3)), unit="kimg",
                    dynamic_ncols=True, mininterval=0.5,
                    bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")

    # -----------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Train to the config's kimg (or a stop); the run directory's lock is released at the end."""
        try:
            return self._run()
        finally:
            self.lock.release()

    def _run(self) -> RunResult:
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
                          f" on {where}; {self.task.describe()}" +
                          (f"; changed since the state was saved: {', '.join(self.resume_changes)}"
                           if self.resume_changes else ""))
        bar = self._progress_bar()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        tick_time, tick_nimg = time.time(), self.nimg
        state, message = "finished", ""
        try:
            with StopRequest(self.stop_event) as stop:
                if not resumed:
                    self.write_samples()
                while self.nimg < total:
                    if distributed.any_rank(self.ranks, bool(stop), self.device):   # Ctrl-C on any rank stops all
                        state, message = "stopped", f"stopped at step {self.step} on request"
                        break
                    before = self.nimg
                    stats = self.task.train_step()
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
                        values.update(self.task.scheduled_values())
                        values["speed/img_s"] = (self.nimg - tick_nimg) / max(now - tick_time, 1e-9)
                        self.writer.write("scalars", self.step, self.kimg, values=values)
                        sums, counts, tick_time, tick_nimg = {}, {}, now, self.nimg
                        if bar is not None:
                            bar.set_postfix_str(f"D {values['loss/D']:.3f} G {values['loss/G']:.3f} "
                                                f"{values['speed/img_s']:.0f} img/s")
                    if bar is not None:   # set, not added: summed float steps crept past the total
                        bar.n = min(round(self.kimg, 3), bar.total)
                        bar.update(0)   # redraws at most every mininterval
                    if crossed(before, self.nimg, t.sample_kimg):
                        self.write_samples()
                    if crossed(before, self.nimg, t.snapshot_kimg) and self.nimg < total:
                        self.write_snapshot()
                    if t.metrics and t.metrics_kimg and crossed(before, self.nimg, t.metrics_kimg) \
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

    def _run_metrics(self) -> None:
        """Metrics inform; they never end a run. A task logs its expected failures per metric;
        anything else (a bug, a missing package) is logged here. Every rank calls it: the ranks
        may share the work."""
        try:
            self.task.run_metrics(self.writer)
        except Exception as exc:  # noqa: BLE001 - the run and its checkpoints matter more
            message = f"{type(exc).__name__}: {exc}"
            self.writer.write("metric", self.step, self.kimg, name="error", value=math.nan, error=message)
            self.log(f"metrics failed, training goes on: {message}")


def crossed(before: int, after: int, every_kimg: float) -> bool:
    """Whether going from `before` to `after` images passed a multiple of `every_kimg` (0: never)."""
    if every_kimg <= 0:
        return False
    every = every_kimg * 1000
    return math.floor(after / every) > math.floor(before / every)


def Trainer(cfg: RunConfig, run_dir, resume: bool = False, **kwargs):
    """The task of a run, set up as RunLoop sets it up (run directory, processes, resume state),
    for scripts that take steps themselves (benchmarks, the distributed tests): `.train_step()`."""
    return RunLoop(cfg, run_dir, resume=resume, **kwargs).task


def train(cfg: RunConfig | None = None, outdir=None, run_dir=None, resume: bool = False,
          kimg: float | None = None, resume_overrides: dict | None = None, **kwargs) -> RunResult:
    """Start a run of any task in a new numbered directory under `outdir`, or resume the one at
    `run_dir` with its saved config (`kimg`, when given, moves its end; `resume_overrides` may
    change the train fields named in RESUME_OVERRIDABLE). Every option is checked before a
    directory is made. Under torchrun every process calls this; rank 0 alone reads and writes
    the run directory."""
    if resume:
        resume_overrides = dict(resume_overrides or {})
        given_source = resume_overrides.pop("source", None)   # only where the saved data is missing
        for name in resume_overrides:   # checked first: no file is read for a refused change
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
            cfg.data.source, note = resumed_source(cfg.data.source, given_source, run_dir)
            if note and ranks.is_main:
                print(f"note: {note}", file=sys.stderr)
            for name, value in resume_overrides.items():
                if not hasattr(cfg.train, name):
                    raise ConfigError(f"--{name.replace('_', '-')} does not apply to this run (a {cfg.task} run)")
                setattr(cfg.train, name, value)
        if kimg is not None:
            cfg.train.kimg = float(kimg)
        cfg.validate()   # options are checked before anything is written
        TASKS[cfg.task].check(cfg, ranks.world)
        if not resume:   # a model too large for this machine is refused before the data is read
            cfg = RunConfig.from_json(cfg.to_json())            # the caller's config stays as it was
            cfg.data.source = stored_source(cfg.data.source)   # found again from any folder
            check_model_size(cfg)
            TASKS[cfg.task].check_new_run(cfg)
        created = not resume and run_dir is None
        if created:
            run_dir = Path(distributed.from_main(ranks, lambda: str(new_run_dir(outdir, cfg))))
        try:
            loop = RunLoop(cfg, run_dir, resume=resume, **kwargs)
        except BaseException:
            if created and ranks.is_main:   # a run that never started leaves no directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return loop.run()
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
