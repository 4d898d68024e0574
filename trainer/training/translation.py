"""Training Pix2Pix and CycleGAN: the objectives of the papers, with the run directory, run log,
checkpoints, sample strips and exact resume of `trainer.training.loop`.

Pix2Pix: D on (input, output) pairs with cross-entropy; G minimises the adversarial term plus
lambda * L1 to the target. CycleGAN: least squares for both D (on a history pool of 50 fakes)
and G, plus cycle consistency (lambda 10) and identity (0.5 lambda) terms. Both: Adam 2e-4
(0.5, 0.999), D's loss halved, learning rates constant and then falling linearly to zero.
"""
from __future__ import annotations

import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.checkpoint import export_generator, load_state, save_state
from trainer.config import ConfigError
from trainer.data.datasets import DataError
from trainer.device import select_device
from trainer.events import EventWriter
from trainer.files import atomic_write, new_run_dir
from trainer.images import make_grid, save_png, to_uint8
from trainer.training.loop import RunResult, TrainingFailed, _crossed, _StopRequest
from trainer.models import build_discriminator, build_generator
from trainer.training.translation_config import TranslationRunConfig
from trainer.data.paired import TranslationData, TranslationSampler, held_out_config, load_translation_data

RESUME_OVERRIDABLE = ("kimg", "metrics", "metrics_images", "sample_kimg", "snapshot_kimg", "log_every",
                      "threads", "device")


def adversarial_loss(kind: str, logits: torch.Tensor, real: bool) -> torch.Tensor:
    """The papers' GAN terms on a PatchGAN's logit map: cross-entropy, or least squares (LSGAN)."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def readout(kind: str, logits: torch.Tensor) -> float:
    return (torch.sigmoid(logits) if kind == "nonsat" else logits).mean().item()


class ImagePool:
    """Shrivastava et al.'s history of generated images: once full, each new fake is, with
    probability 1/2, swapped for a stored one, which D sees instead. Draws from torch's global
    generator, which the resume state saves."""

    def __init__(self,
                 size: int,   # images kept; 0 turns the pool off (D sees only the newest fakes)
                 ):
        self.size = size
        self.images: list[torch.Tensor] = []      # each [C, H, W]

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand([]).item() < 0.5:
                index = int(torch.randint(0, self.size, []).item())
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor:
        return torch.stack(self.images).cpu() if self.images else torch.zeros(0)

    def load(self, stored: torch.Tensor, device) -> None:
        self.images = [image.to(device) for image in stored] if stored.numel() else []


def resolve_config(cfg: TranslationRunConfig, data: TranslationData) -> TranslationRunConfig:
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


class TranslationTrainer:
    def __init__(self,
                 cfg: TranslationRunConfig,                  # validated; shapes are filled from the data
                 run_dir,                                    # the run directory (created by train_translation)
                 resume: bool = False,                       # continue from run_dir/state/last.pt
                 progress: bool = True,                      # print a line per logged step
                 stop_event: threading.Event | None = None,  # set it to stop between steps (None: signals only)
                 log=print,                                  # where messages for people go
                 ):
        self.run_dir = Path(run_dir)
        self.progress, self.stop_event, self.log = progress, stop_event, log
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = select_device(t.device)
        self.cyclegan = cfg.model.arch == "cyclegan"
        self.data = load_translation_data(cfg.data, paired=not self.cyclegan)
        if self.data.skipped:
            self.log(f"skipped {len(self.data.skipped)} unreadable file(s), e.g. "
                     f"{self.data.skipped[0][0]} ({self.data.skipped[0][1]})")
        self.cfg = resolve_config(cfg, self.data)
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        m = self.cfg.model
        self.G = build_generator(m).to(self.device).train()
        self.D = build_discriminator(m).to(self.device).train()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=t.g_lr, betas=(t.beta1, t.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.d_lr, betas=(t.beta1, t.beta2))
        self.sampler = TranslationSampler(self.data, t.batch, t.seed, cfg.data.xflip, self.device)
        self.pools = (ImagePool(t.pool_size), ImagePool(t.pool_size))   # fakes of A, fakes of B
        self.step, self.nimg, self.elapsed = 0, 0, 0.0
        self.last_checkpoint = ""
        for sub in ("samples", "checkpoints", "state"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        if resume:
            self._load_state(load_state(self.run_dir / "state" / "last.pt"))
        atomic_write(self.run_dir / "config.json",
                     lambda tmp: Path(tmp).write_text(self.cfg.to_json() + "\n", encoding="utf-8"))
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

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    def learning_rate_factor(self) -> float:
        """1 for constant_kimg, then linearly down to 0 over decay_kimg (absolute, so a resume keeps it)."""
        t = self.cfg.train
        past = self.kimg - t.constant_kimg
        return 1.0 if past <= 0 else max(0.0, 1.0 - past / max(t.decay_kimg, 1e-9))

    def _set_learning_rates(self) -> None:
        factor = self.learning_rate_factor()
        for opt, base in ((self.opt_G, self.cfg.train.g_lr), (self.opt_D, self.cfg.train.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def _inputs_and_targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.sampler.next()
        return (a, b) if self.cfg.model.direction == "AtoB" else (b, a)

    # -----------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        self._set_learning_rates()
        stats = self._cyclegan_step() if self.cyclegan else self._pix2pix_step()
        self.step += 1
        return stats

    def _pix2pix_step(self) -> dict[str, float]:
        t, kind = self.cfg.train, self.cfg.train.loss
        inputs, targets = self._inputs_and_targets()
        outputs = self.G(inputs)
        self.D.requires_grad_(True)
        d_real = self.D(inputs, targets)
        d_fake = self.D(inputs, outputs.detach())
        loss_d = 0.5 * (adversarial_loss(kind, d_real, True) + adversarial_loss(kind, d_fake, False))
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        self.D.requires_grad_(False)
        adversarial = adversarial_loss(kind, self.D(inputs, outputs), True)
        l1 = F.l1_loss(outputs, targets)
        loss_g = adversarial + t.l1_weight * l1
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self.nimg += inputs.shape[0]
        return {"loss/D": loss_d.item(), "loss/G": loss_g.item(), "loss/adversarial": adversarial.item(),
                "loss/l1": l1.item(), "D/real": readout(kind, d_real), "D/fake": readout(kind, d_fake)}

    def _cyclegan_step(self) -> dict[str, float]:
        t, kind, G, D = self.cfg.train, self.cfg.train.loss, self.G, self.D
        real_a, real_b = self.sampler.next()
        fake_b = G.a_to_b(real_a)
        fake_a = G.b_to_a(real_b)
        cycle_a = F.l1_loss(G.b_to_a(fake_b), real_a)
        cycle_b = F.l1_loss(G.a_to_b(fake_a), real_b)
        identity = torch.zeros([], device=self.device)
        if t.identity_weight > 0 and real_a.shape[1] == real_b.shape[1]:   # only between like channels
            identity = F.l1_loss(G.a_to_b(real_b), real_b) + F.l1_loss(G.b_to_a(real_a), real_a)
        D.requires_grad_(False)
        adversarial = adversarial_loss(kind, D.d_b(fake_b), True) + adversarial_loss(kind, D.d_a(fake_a), True)
        loss_g = adversarial + t.cycle_weight * (cycle_a + cycle_b + t.identity_weight * identity)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        D.requires_grad_(True)
        pooled_a = self.pools[0].query(fake_a)
        pooled_b = self.pools[1].query(fake_b)
        d_real_a, d_fake_a = D.d_a(real_a), D.d_a(pooled_a)
        d_real_b, d_fake_b = D.d_b(real_b), D.d_b(pooled_b)
        loss_d_a = 0.5 * (adversarial_loss(kind, d_real_a, True) + adversarial_loss(kind, d_fake_a, False))
        loss_d_b = 0.5 * (adversarial_loss(kind, d_real_b, True) + adversarial_loss(kind, d_fake_b, False))
        self.opt_D.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        self.opt_D.step()
        self.nimg += real_a.shape[0]
        return {"loss/D": (loss_d_a + loss_d_b).item(), "loss/G": loss_g.item(),
                "loss/adversarial": adversarial.item(), "loss/cycle_A": cycle_a.item(),
                "loss/cycle_B": cycle_b.item(), "loss/identity": identity.item(),
                "D/real": 0.5 * (readout(kind, d_real_a) + readout(kind, d_real_b)),
                "D/fake": 0.5 * (readout(kind, d_fake_a) + readout(kind, d_fake_b))}

    # -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(),
                 "opt_D": self.opt_D.state_dict(), "rng_cpu": torch.get_rng_state(),
                 "sampler": self.sampler.state_dict(), "pool_a": self.pools[0].state(),
                 "pool_b": self.pools[1].state(), "step": self.step, "nimg": self.nimg,
                 "elapsed": self.writer.elapsed() if getattr(self, "writer", None) else self.elapsed,
                 "config": self.cfg.to_json(), "last_checkpoint": self.last_checkpoint}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _load_state(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self.sampler.load_state_dict(state["sampler"])
        self.pools[0].load(state["pool_a"], self.device)
        self.pools[1].load(state["pool_b"], self.device)
        self.step, self.nimg, self.elapsed = int(state["step"]), int(state["nimg"]), float(state["elapsed"])
        self.last_checkpoint = state.get("last_checkpoint", "")

    @torch.no_grad()
    def strip(self) -> np.ndarray:
        """The sample picture: columns of held-out inputs; rows input | output | target (Pix2Pix),
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

    def write_samples(self) -> None:
        path = f"samples/step-{self.step:06d}.png"
        save_png(self.run_dir / path, self.strip())
        self.writer.write("samples", self.step, self.kimg, path=path)

    def write_snapshot(self) -> None:
        for name, module in (("G", self.G), ("D", self.D)):
            if not all(torch.isfinite(p).all() for p in module.parameters()):
                raise TrainingFailed(f"{name}'s weights are not finite at step {self.step}; "
                                     f"not saving over {self.last_checkpoint or 'the last checkpoint'}")
        path = f"checkpoints/step-{self.step:06d}.safetensors"
        m = self.cfg.model
        extra = {"direction": m.direction, "in_channels": str(m.in_channels), "out_channels": str(m.out_channels),
                 "resolution": str(m.img_resolution), "paired": str(self.data.paired).lower()}
        if self.cyclegan:
            extra["generators"] = "a_to_b,b_to_a"
        export_generator(self.G, self.run_dir / path, m, self.step, self.kimg, self.data.describe(), extra)
        self.last_checkpoint = path
        save_state(self.run_dir / "state" / "last.pt", self.state_dict())
        self.writer.write("checkpoint", self.step, self.kimg, path=path)

    def _check(self, stats: dict[str, float]) -> None:
        for name, value in stats.items():
            if not math.isfinite(value):
                raise TrainingFailed(f"{name} became {value} at step {self.step}")
            if name.startswith("loss/") and abs(value) > self.cfg.train.explode_threshold:
                raise TrainingFailed(f"{name} exploded to {value:.3g} at step {self.step}")

    # -----------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        t = self.cfg.train
        total = int(round(t.kimg * 1000))
        resumed = self.step > 0
        if resumed and self.nimg >= total:
            raise ValueError(f"the run is already at {self.kimg:.3f} kimg, so --kimg {t.kimg:g} trains nothing "
                             "more: give a larger --kimg to continue it")
        self.writer = EventWriter(self.run_dir / "events.jsonl", elapsed=self.elapsed)
        self.writer.write("status", self.step, self.kimg, state="running",
                          message=(f"resumed at step {self.step}" if resumed else "started") +
                          f" on {self.device.type}; {len(self.data.a)} A and {len(self.data.b)} B images")
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        tick_time, tick_nimg = time.time(), self.nimg
        state, message = "finished", ""
        try:
            with _StopRequest(self.stop_event) as stop:
                if not resumed:
                    self.write_samples()
                while self.nimg < total:
                    if stop:
                        state, message = "stopped", f"stopped at step {self.step} on request"
                        break
                    before = self.nimg
                    stats = self.train_step()
                    self._check(stats)
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v
                        counts[k] = counts.get(k, 0) + 1
                    if self.step % t.log_every == 0:
                        now = time.time()
                        values = {k: sums[k] / counts[k] for k in sums}
                        values["lr/G"] = self.opt_G.param_groups[0]["lr"]
                        values["lr/D"] = self.opt_D.param_groups[0]["lr"]
                        values["speed/img_s"] = (self.nimg - tick_nimg) / max(now - tick_time, 1e-9)
                        self.writer.write("scalars", self.step, self.kimg, values=values)
                        if self.progress:
                            self.log(f"step {self.step} {self.kimg:.2f} kimg  " + "  ".join(
                                f"{k.split('/')[-1]} {v:.3f}" for k, v in values.items() if k.startswith("loss/")))
                        sums, counts, tick_time, tick_nimg = {}, {}, now, self.nimg
                    if _crossed(before, self.nimg, t.sample_kimg):
                        self.write_samples()
                    if _crossed(before, self.nimg, t.snapshot_kimg) and self.nimg < total:
                        self.write_snapshot()
                self.write_samples()
                self.write_snapshot()
                if state == "finished" and t.metrics:
                    self._run_metrics()
        except TrainingFailed as exc:
            state = "failed"
            message = f"{exc}. The last good checkpoint is {self.last_checkpoint or 'none (no checkpoint yet)'}."
        except OSError as exc:
            state = "failed"
            message = (f"could not write to {self.run_dir}: {exc}. The last good checkpoint is "
                       f"{self.last_checkpoint or 'none'}; free space and resume with --resume.")
        except BaseException as exc:
            self._end_log("failed", f"{type(exc).__name__}: {exc}. The last good checkpoint is "
                                    f"{self.last_checkpoint or 'none'}; resume with --resume.")
            raise
        self._end_log(state, message or "finished")
        return RunResult(self.run_dir, state, self.step, self.kimg, message)

    def _end_log(self, state: str, message: str) -> None:
        try:
            self.writer.write("status", self.step, self.kimg, state=state, message=message)
        except OSError:
            pass
        self.writer.close()

    def _run_metrics(self) -> None:
        """Held-out metrics as `metric` lines; a failure is logged, never ends the run."""
        from trainer.metrics.translation import evaluate_translation
        try:
            results = evaluate_translation(self.G, self.cfg, self.device, self.cfg.train.metrics,
                                           self.cfg.train.metrics_images, progress=self.progress)
        except Exception as exc:  # noqa: BLE001 - the run and its checkpoints matter more
            message = f"{type(exc).__name__}: {exc}"
            self.writer.write("metric", self.step, self.kimg, name="error", value=math.nan, error=message)
            self.log(f"metrics failed: {message}")
            return
        for name, value in results.items():
            features = "inception-2015-12-05 against held-out targets" if name.endswith("fid") else \
                "pixels of held-out images"
            self.writer.write("metric", self.step, self.kimg, name=name, value=value,
                              num_samples=self.cfg.train.metrics_images, features=features)


def train_translation(cfg: TranslationRunConfig | None = None, outdir=None, run_dir=None, resume: bool = False,
                      kimg: float | None = None, resume_overrides: dict | None = None, **kwargs) -> RunResult:
    """Start an image-to-image run in a new numbered directory under `outdir`, or resume the one
    at `run_dir` with its saved config (`kimg` moves its end; `resume_overrides` may change the
    train fields named in RESUME_OVERRIDABLE)."""
    if resume:
        for name in resume_overrides or {}:
            if name not in RESUME_OVERRIDABLE:
                raise ValueError(f"--{name.replace('_', '-')} cannot change when resuming (changeable: "
                                 f"{', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDABLE)})")
        run_dir = Path(run_dir)
        config_file = run_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{run_dir} is not a run directory (it has no config.json)")
        cfg = TranslationRunConfig.from_json(config_file.read_text(encoding="utf-8"))
        for name, value in (resume_overrides or {}).items():
            setattr(cfg.train, name, value)
    if kimg is not None:
        cfg.train.kimg = float(kimg)
    cfg.validate()
    created = not resume and run_dir is None
    if created:
        run_dir = new_run_dir(outdir, cfg)
    try:
        trainer = TranslationTrainer(cfg, run_dir, resume=resume, **kwargs)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return trainer.run()
