"""One training step of Pix2Pix or CycleGAN, as the papers compute it.

Pix2Pix: D on (input, output) pairs with cross-entropy; G minimises the adversarial term plus
lambda * L1 to the target. CycleGAN: least squares for both D (on a history pool of 50 fakes)
and G, plus cycle consistency (lambda 10) and identity (0.5 lambda) terms. Both: Adam 2e-4
(0.5, 0.999), D's loss halved, learning rates constant and then falling linearly to zero.

On several processes each takes its contiguous share of the global batch; DDP sees the forward
passes of the network that learns (G through CycleForward, D through PairedCritics for
CycleGAN), and a frozen network is called directly, as in trainer.training.gan_steps.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.training.distributed import average_, micro_batch_seed, share


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


class CycleForward(nn.Module):
    """Both CycleGAN generators' training passes as one module, so DDP can wrap them."""

    def __init__(self, G: nn.Module, identity: bool):
        super().__init__()
        self.G, self.identity = G, identity   # identity: also map each domain onto itself

    def forward(self, real_a, real_b):
        """[N, C_A, R, R], [N, C_B, R, R] -> fake_a, fake_b, cycled a, cycled b, identity a, identity b
        (the identities None when off)."""
        G = self.G
        fake_b, fake_a = G.a_to_b(real_a), G.b_to_a(real_b)
        cycled_a, cycled_b = G.b_to_a(fake_b), G.a_to_b(fake_a)
        if not self.identity:
            return fake_a, fake_b, cycled_a, cycled_b, None, None
        return fake_a, fake_b, cycled_a, cycled_b, G.b_to_a(real_a), G.a_to_b(real_b)


class PairedCritics(nn.Module):
    """CycleGAN's two PatchGANs as one module for DDP: D_A on images of A, D_B on images of B."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D

    def forward(self, images_a, images_b):
        return self.D.d_a(images_a), self.D.d_b(images_b)


class TranslationSteps:
    """The step math of TranslationTask (trainer.training.translation), which sets up the attributes used here."""

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

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the next (A, B) batch."""
        a, b = self.sampler.next()
        return share(a, self.ranks), share(b, self.ranks)

    def _forward(self, module, *images):
        """A training forward pass in the run's precision; fp32 results (losses are taken in fp32)."""
        with self.precision.autocast():
            out = module(*(self.precision.memory_format(x) for x in images))
        return tuple(x.float() if x is not None else None for x in out) if isinstance(out, tuple) else out.float()

    def _learn(self, loss, opt, scaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def train_step(self) -> dict[str, float]:
        self._set_learning_rates()
        if self.ranks.active:   # each process its own dropout and pool draws, fixed by the step
            torch.manual_seed(micro_batch_seed(self.cfg.train.seed, "T", self.step, self.ranks.rank))
        stats = self._cyclegan_step() if self.cyclegan else self._pix2pix_step()
        average_(self.ranks, list(self.G.buffers()) + list(self.D.buffers()))   # batch-norm statistics
        self.step += 1
        self.nimg += self.cfg.train.batch
        return stats

    def _pix2pix_step(self) -> dict[str, float]:
        t, kind = self.cfg.train, self.cfg.train.loss
        a, b = self._batch()
        inputs, targets = (a, b) if self.cfg.model.direction == "AtoB" else (b, a)
        outputs = self._forward(self.G_fast, inputs)
        self.D.requires_grad_(True)
        d_real = self._forward(self.D_fast, inputs, targets)
        d_fake = self._forward(self.D_fast, inputs, outputs.detach())
        loss_d = 0.5 * (adversarial_loss(kind, d_real, True) + adversarial_loss(kind, d_fake, False))
        self._learn(loss_d, self.opt_D, self.scaler_D)
        self.D.requires_grad_(False)
        adversarial = adversarial_loss(kind, self._forward(self.D, inputs, outputs), True)
        l1 = F.l1_loss(outputs, targets)
        loss_g = adversarial + t.l1_weight * l1
        self._learn(loss_g, self.opt_G, self.scaler_G)
        return {"loss/D": loss_d.item(), "loss/G": loss_g.item(), "loss/adversarial": adversarial.item(),
                "loss/l1": l1.item(), "D/real": readout(kind, d_real), "D/fake": readout(kind, d_fake)}

    def _cyclegan_step(self) -> dict[str, float]:
        t, kind, D = self.cfg.train, self.cfg.train.loss, self.D
        real_a, real_b = self._batch()
        fake_a, fake_b, cycled_a, cycled_b, same_a, same_b = self._forward(self.G_fast, real_a, real_b)
        cycle_a, cycle_b = F.l1_loss(cycled_a, real_a), F.l1_loss(cycled_b, real_b)
        identity = torch.zeros([], device=self.device)
        if same_a is not None:
            identity = F.l1_loss(same_b, real_b) + F.l1_loss(same_a, real_a)
        D.requires_grad_(False)
        judged_a, judged_b = self._forward(self.D_critics, fake_a, fake_b)
        adversarial = adversarial_loss(kind, judged_b, True) + adversarial_loss(kind, judged_a, True)
        loss_g = adversarial + t.cycle_weight * (cycle_a + cycle_b + t.identity_weight * identity)
        self._learn(loss_g, self.opt_G, self.scaler_G)
        D.requires_grad_(True)
        pooled_a, pooled_b = self.pools[0].query(fake_a), self.pools[1].query(fake_b)
        d_real_a, d_real_b = self._forward(self.D_fast, real_a, real_b)
        d_fake_a, d_fake_b = self._forward(self.D_fast, pooled_a, pooled_b)
        loss_d_a = 0.5 * (adversarial_loss(kind, d_real_a, True) + adversarial_loss(kind, d_fake_a, False))
        loss_d_b = 0.5 * (adversarial_loss(kind, d_real_b, True) + adversarial_loss(kind, d_fake_b, False))
        self._learn(loss_d_a + loss_d_b, self.opt_D, self.scaler_D)
        return {"loss/D": (loss_d_a + loss_d_b).item(), "loss/G": loss_g.item(),
                "loss/adversarial": adversarial.item(), "loss/cycle_A": cycle_a.item(),
                "loss/cycle_B": cycle_b.item(), "loss/identity": identity.item(),
                "D/real": 0.5 * (readout(kind, d_real_a) + readout(kind, d_real_b)),
                "D/fake": 0.5 * (readout(kind, d_fake_a) + readout(kind, d_fake_b))}
