"""One training step of G and D: n_critic D steps, lazy R1, the G step, lazy path length, EMA.
As NVlabs' stylegan3 training code: generating for D's step is what updates the generator's
running statistics (w_avg once per D step from the global batch's mean w; StyleGAN3's magnitude
EMAs inside its layers), and D may see its inputs blurred while the blur fades (StyleGAN3-R).

The global batch is laid out [processes, rounds, batch_gpu] (see trainer.training.distributed): each
process works through its share in rounds, gradients accumulate over the rounds and DDP
averages them over processes on the last round. Every micro-batch reseeds torch's generator
from its place in the global batch, so the draws do not depend on the process count.

DDP sees only the forward passes whose gradients it must average, with every parameter it
wraps taking part: D's main and R1 passes, G's main and path-length passes. D is called
directly (not through DDP) while it is frozen for G's step, and G likewise for D's.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.training import losses
from trainer.training.augment import diff_augment
from trainer.training.distributed import average_, micro_batch_seed, sync_unless_accumulating
from trainer.training.diversity import unrolled_fake_logits


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """NVlabs' blur of D's inputs: a separable Gaussian of `sigma` pixels (exp2 taps over 3 sigma
    each side, normalised, zero padding) -> img, same shape [NCHW]; unchanged below 1/3 pixel."""
    radius = math.floor(sigma * 3)
    if radius <= 0:
        return img
    taps = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    taps = (taps / taps.sum()).to(img.dtype)
    c = img.shape[1]
    img = F.conv2d(img, taps.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(img, taps.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


class GeneratorForTraining(nn.Module):
    """G's training forward as one module, so DDP can wrap it: style mixing at a given cutoff,
    random noise, the synthesis' EMAs updated only when asked; w is not tracked here (the step
    updates w_avg once over the global batch)."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G
        self.style_based = getattr(G, "num_ws", 0) > 0

    def forward(self, z, c, z_mix=None, cutoff=None, update_emas: bool = False):
        """z: [N, z_dim]; z_mix and cutoff (a 0-dim tensor, so a compiled graph serves every
        cutoff): w from z_mix from layer `cutoff` on; update_emas: StyleGAN3's magnitude EMAs move
        (NVlabs: only when generating for D's step). -> (img [NCHW], ws [N, num_ws, w_dim] or None)"""
        if not self.style_based:
            return self.G(z, c), None
        ws = self.G.mapping(z, c)
        if z_mix is not None:
            from_first = torch.arange(ws.shape[1], device=ws.device) < cutoff   # [num_ws]
            ws = torch.where(from_first[None, :, None], ws, self.G.mapping(z_mix, c))
        return self.G.synthesis(ws, noise_mode="random", update_emas=update_emas), ws


class GanSteps:
    """The step math of GanTask (trainer.training.gan), which sets up the attributes used here."""

    def _augment(self, x):
        """What D sees of an image: blurred while the blur fades (StyleGAN3-R), then ADA's pipe
        (NVlabs' order) or DiffAugment."""
        x = blur(x, self._blur_sigma())
        if self.ada is not None:
            return self.ada(x)
        return diff_augment(x, self.policy) if self.policy else x

    def _blur_sigma(self) -> float:
        t = self.cfg.train
        if t.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - self.nimg / (t.blur_fade_kimg * 1e3), 0) * t.blur_sigma

    def _fake_labels(self, c_real):
        if not self.cfg.model.c_dim:
            return None
        return c_real[torch.randperm(c_real.shape[0], device=c_real.device)]

    def _generator_labels(self, c_real):
        """Labels for G's step. With mode seeking on a conditional model, the batch's second half
        repeats the first half's labels: MSGAN compares two latents under the same condition, so
        the term asks for variety within a class (with unrelated labels it would only reward the
        differences between classes, which the labels already give)."""
        c_fake = self._fake_labels(c_real)
        if c_fake is not None and self.cfg.train.mode_seeking:
            half = c_fake.shape[0] // 2
            c_fake = torch.cat([c_fake[:half], c_fake[:half], c_fake[2 * half:]])
        return c_fake

    def _seed(self, phase: str, counter: int, round_index: int) -> None:
        index = self.ranks.rank * self.rounds + round_index
        torch.manual_seed(micro_batch_seed(self.cfg.train.seed, phase, counter, index))

    def _mixing(self, z):
        """(z_mix, cutoff) for style-mixing regularisation, or (None, None)."""
        mixing = self.cfg.train.style_mixing
        if not self.style_based or mixing <= 0 or torch.rand([]).item() >= mixing:
            return None, None
        # among the layers the level of the moment reads (NVlabs' cur_layers), for a growing G
        cutoff = torch.randint(1, getattr(self.G, "num_active_ws", self.G.num_ws), [])
        return torch.randn_like(z), cutoff.to(z.device)

    def _generate(self, z, c, through=None, update_emas: bool = False):
        """Images from z as in training (through DDP when given) -> (img, ws or None)."""
        z_mix, cutoff = self._mixing(z)
        with self.precision.autocast():
            img, ws = (self.G_train if through is None else through)(z, c, z_mix, cutoff, update_emas=update_emas)
        return img.float(), ws

    def _discriminate(self, D, img, c):
        with self.precision.autocast():
            logits, aux = D(self.precision.memory_format(img), c)
        return logits.float(), None if aux is None else aux.float()

    def _rounds(self, tensor):
        return tensor.split(self.batch_gpu)

    def _backward(self, loss, scaler):
        scaler.scale(loss / self.rounds).backward()

    def _step(self, opt, scaler):
        scaler.step(opt)
        scaler.update()

    # -----------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        t, kind = self.cfg.train, self.cfg.train.loss
        stats: dict[str, float] = {}
        if self.growth is not None:   # the level of detail of this step (logged by scheduled_values)
            self.growth.before_step(self.nimg)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        last = self.rounds - 1
        for _ in range(t.n_critic):
            real_share, c_share = self.sampler.next()   # this process's share of the global batch
            if self.growth is not None:
                real_share = self.growth.fade_reals(real_share)
            reals, c_reals = self._rounds(real_share), self._rounds(c_share)
            self.opt_D.zero_grad(set_to_none=True)
            totals = {"loss/D": 0.0, "D/real": 0.0, "D/fake": 0.0, "wasserstein": 0.0}
            w_sum = torch.zeros([], device=self.device)
            for k, (real, c_real) in enumerate(zip(reals, c_reals)):
                self._seed("D", self.d_steps, k)
                with sync_unless_accumulating(self.D_ddp, k == last):
                    loss_d, d_real, d_fake, w_mean = self._d_loss(real, c_real, stats)
                    self._backward(loss_d, self.scaler_D)
                w_sum = w_sum + w_mean
                totals["loss/D"] += loss_d.item() / self.rounds
                totals["D/real"] += losses.d_readout(kind, d_real) / self.rounds
                totals["D/fake"] += losses.d_readout(kind, d_fake) / self.rounds
                totals["wasserstein"] += (d_real.mean() - d_fake.mean()).item() / self.rounds
            self._step(self.opt_D, self.scaler_D)
            if self.style_based:
                self._track_w_avg(w_sum / self.rounds)
            self.d_steps += 1
            if self.ada is not None:
                self.ada.after_d_step(self.d_steps)
            if t.r1_gamma > 0 and self.d_steps % t.r1_every == 0:
                stats["r1"] = self._r1_step(reals, c_reals)
            if kind == "wgan":
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-t.clip, t.clip)
            self.nimg += t.batch
        stats.update(totals)
        if self.ada is not None:
            stats.update(self.ada.scalars())
        if kind not in losses.CRITIC_LOSSES:
            del stats["wasserstein"]

        # Generator step.
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g_total = 0.0
        for k, (real, c_real) in enumerate(zip(reals, c_reals)):
            self._seed("G", self.step, k)
            c_fake = self._generator_labels(c_real)
            z = torch.randn(real.shape[0], self.cfg.model.z_dim, device=self.device)
            with sync_unless_accumulating(self.G_ddp, k == last):
                fake, ws = self._generate(z, c_fake, self.G_fast)
                loss_g = self._g_loss(z, fake, real, c_real, c_fake, stats)
                self._backward(loss_g, self.scaler_G)
            loss_g_total += loss_g.item() / self.rounds
        self._step(self.opt_G, self.scaler_G)
        stats["loss/G"] = loss_g_total
        self.remedies.after_steps(self.G, self.D)
        if self.style_based and t.pl_weight > 0 and self.step % t.pl_every == 0:
            stats["pl"] = self._path_length_step()
        self.step += 1
        average_(self.ranks, list(self.G.buffers()) + list(self.D.buffers()))   # batch-norm statistics
        self._update_ema()
        return stats

    def _d_loss(self, real, c_real, stats):
        t, kind = self.cfg.train, self.cfg.train.loss
        c_fake = self._fake_labels(c_real)
        c_seen = c_real if c_fake is not None else None
        with torch.no_grad():
            fake, ws = self._generate(torch.randn(real.shape[0], self.cfg.model.z_dim, device=self.device), c_fake,
                                      self.G_train, update_emas=True)
        w_mean = ws[:, 0].float().mean(dim=0) if ws is not None else 0.0
        d_real, aux_real = self._discriminate(self.D_fast, self._augment(real), c_seen)
        if self.ada is not None:
            self.ada.observe(d_real)
        d_fake, aux_fake = self._discriminate(self.D_fast, self._augment(fake), c_fake)
        loss_d = losses.d_loss(kind, d_real, d_fake, t.real_label)
        if aux_real is not None:
            loss_d = loss_d + t.acgan_weight * (F.cross_entropy(aux_real, c_real) + F.cross_entropy(aux_fake, c_fake))
        if kind == "wgan-gp":
            gp = losses.gradient_penalty(self.D, real, fake, c_seen)
            loss_d = loss_d + t.gp_weight * gp
            stats["gp"] = gp.item()
        if t.drift_weight > 0:   # ProGAN's drift term keeps the critic's outputs near zero
            loss_d = loss_d + t.drift_weight * d_real.square().mean()
        return loss_d + self.remedies.d_penalty(self.D, stats), d_real, d_fake, w_mean

    def _g_loss(self, z, fake, real, c_real, c_fake, stats):
        t, kind = self.cfg.train, self.cfg.train.loss
        fake = self._augment(fake)
        d_fake, aux_fake = self._discriminate(self.D, fake, c_fake)   # D frozen: called directly, not via DDP
        c_seen = c_real if c_fake is not None else None
        if t.unrolled_steps:   # G answers to D as it will be a few steps from now
            d_fake = unrolled_fake_logits(self.D, kind, t.unrolled_steps, t.unrolled_lr, self._augment(real), fake,
                                          c_seen, c_fake)
        loss_g = losses.g_loss(kind, d_fake)
        if aux_fake is not None:
            loss_g = loss_g + t.acgan_weight * F.cross_entropy(aux_fake, c_fake)
        if t.ortho_reg > 0:   # BigGAN's orthogonal regularisation of G's weights
            ortho = losses.orthogonal_penalty(self.G)
            stats["ortho"] = ortho.item()
            loss_g = loss_g + t.ortho_reg * ortho
        return loss_g + self.remedies.g_terms(self.G, self.D, kind, z, fake, self._augment(real), c_seen, c_fake,
                                              stats)

    def _r1_step(self, reals, c_reals) -> float:
        """R1 (Mescheder et al., 2018) lazily, in fp32: squared gradient norm of D on real data."""
        t = self.cfg.train
        self.opt_D.zero_grad(set_to_none=True)
        total = 0.0
        for k, (real, c_real) in enumerate(zip(reals, c_reals)):
            self._seed("R1", self.d_steps, k)
            real = real.detach().requires_grad_(True)
            c_seen = c_real if self.cfg.model.c_dim else None
            with sync_unless_accumulating(self.D_ddp, k == self.rounds - 1):
                logits, aux = self.D_ddp(self._augment(real), c_seen)
                (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
                r1 = grad.flatten(1).square().sum(dim=1).mean()
                # logits * 0: D's last bias (and a class head) get a zero gradient, not none, so
                # DDP finds every parameter it waits for in this backward
                untouched = logits.sum() * 0 + (aux.sum() * 0 if aux is not None else 0)
                self._backward(r1 * (t.r1_gamma / 2) * t.r1_every + untouched, self.scaler_D)
            total += r1.item() / self.rounds
        self._step(self.opt_D, self.scaler_D)
        return total

    def _path_length_step(self) -> float:
        """Path-length regularisation (Karras et al., 2020), lazily, on half a batch, in fp32.
        The penalty is taken against the running mean from before this step, and the mean moves
        once by the global batch's mean length, so the result does not depend on the layout."""
        t = self.cfg.train
        n = max(self.batch_gpu // 2, 1)
        self.opt_G.zero_grad(set_to_none=True)
        length_sum, total = torch.zeros([], device=self.device), 0.0
        for k in range(self.rounds):
            self._seed("PL", self.step, k)
            c = self._fake_labels(self.dataset.labels[:n].to(self.device)) if self.cfg.model.c_dim else None
            z = torch.randn(n, self.cfg.model.z_dim, device=self.device)
            z_mix, cutoff = self._mixing(z)
            with sync_unless_accumulating(self.G_ddp, k == self.rounds - 1):
                img, ws = self.G_ddp(z, c, z_mix, cutoff)
                noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
                (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
                lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
                penalty = (lengths - self.pl_mean).square().mean()
                # img * 0: the last layer's bias shapes no gradient w.r.t. w; DDP must still see it
                self._backward(penalty * t.pl_weight * t.pl_every + img.sum() * 0, self.scaler_G)
            length_sum = length_sum + lengths.mean().detach()
            total += penalty.item() / self.rounds
        self._step(self.opt_G, self.scaler_G)
        mean = (length_sum / self.rounds).reshape(1)
        average_(self.ranks, [mean])
        self.pl_mean = self.pl_mean.lerp(mean[0], 0.01)
        return total

    @torch.no_grad()
    def _track_w_avg(self, w_mean):
        """w_avg follows the mean w of the whole global batch, once per G step (the same on every rank)."""
        w_mean = w_mean.reshape(1, -1)
        average_(self.ranks, [w_mean])
        mapping = self.G.mapping
        mapping.w_avg.copy_(w_mean[0].lerp(mapping.w_avg, mapping.w_avg_beta))

    @torch.no_grad()
    def _update_ema(self):
        t = self.cfg.train
        if t.ema_kimg > 0:
            ema_nimg = t.ema_kimg * 1000
            if t.ema_rampup > 0:
                ema_nimg = min(ema_nimg, self.nimg * t.ema_rampup)
            beta = 0.5 ** (t.batch / max(ema_nimg, 1e-8))
        else:
            beta = 0.0
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
