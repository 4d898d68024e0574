"""Per-image reconstruction losses for inversion: pixels, SSIM / MS-SSIM and feature distances.

Every loss maps (images, targets) [N, C, H, W] in [-1, 1] to a loss per image [N], so a batch of
inversions optimised together never couples its images (each image's gradient depends only on
its own loss). Feature losses come from networks this machine has offline: the metrics' Inception
(NVlabs' FID network), the run's own discriminator when its `state/` holds one, and LPIPS (VGG)
only where the `lpips` package and its weights are installed.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)   # Wang et al. 2003, finest scale first
SSIM_WINDOW = 11           # pixels, Gaussian sigma 1.5 (Wang et al. 2004)
INCEPTION_INPUT = 128      # pixels: enough for the stem's early layers, a fraction of 299's cost
LOSS_NAMES = ("mse", "detail", "l1", "ssim", "ms_ssim", "inception", "discriminator", "lpips")
DEFAULT_LOSSES = {"mse": 1.0, "detail": 3.0}   # projection's and PTI's (benchmarks/inversion.py measured them)


class LossUnavailable(ValueError):
    """A loss whose network is not on this machine; the message says what to install."""


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((images + 1) / 2).clamp(0, 1)


def psnr(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image [N], on the [0, 1] scale (as for 8-bit pixels)."""
    mse = (to_unit(images) - to_unit(targets)).square().flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def detail_error(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE of the residual's fine detail per image [N]: the residual minus its 3x3 binomial blur
    (a Laplacian pyramid's finest level). Added to MSE it gives the fine-detail directions of the
    latent, which pixel MSE moves slowly, more of each step: +0.6 dB at 100 steps on 100 of the
    demo's test images (benchmarks/inversion.py), +1.2 on the first 20."""
    return high_pass((images - targets).float()).square().flatten(1).mean(1).to(images.dtype)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """The detail loss's view of a residual [N, C, H, W]: it minus its 3x3 binomial blur."""
    return x - binomial_blur(x)


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> the same, each channel blurred by the 3x3 binomial kernel (edges reflected).
    As two [1, 2, 1] passes of shifted sums: 7x faster on CPU than a depthwise conv2d on 32 px maps."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    rows = padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]
    return (rows[..., :-2] + 2 * rows[..., 1:-1] + rows[..., 2:]) / 16


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma ** 2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y in [0, 1] [N, C, H, W] -> (ssim, contrast-structure) per image [N], valid windows only."""
    channels = x.shape[1]
    size = min(SSIM_WINDOW, x.shape[2], x.shape[3])
    g = _gaussian_window(size, 1.5 * size / SSIM_WINDOW, x.device, x.dtype)
    gx = g.view(1, 1, 1, size).repeat(channels, 1, 1, 1)
    gy = g.view(1, 1, size, 1).repeat(channels, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, gx, groups=channels), gy, groups=channels)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1) * cs
    return ssim_map.flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image [N] (1 = identical), inputs in [-1, 1]."""
    return _ssim_parts(to_unit(images), to_unit(targets))[0]


def ms_ssim(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM per image [N], with as many of the five scales as the image size allows
    (each scale at least SSIM_WINDOW pixels wide; 2 scales at 32x32), weights renormalised."""
    x, y = to_unit(images), to_unit(targets)
    levels = max(1, min(len(MS_SSIM_WEIGHTS), int(math.log2(min(x.shape[2:]) / SSIM_WINDOW)) + 1))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], device=x.device, dtype=x.dtype)
    weights = weights / weights.sum()
    result = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for level in range(levels):
        s, cs = _ssim_parts(x, y)
        if level == levels - 1:
            result = result * s.clamp_min(1e-6) ** weights[level]
        else:
            result = result * cs.clamp_min(1e-6) ** weights[level]
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return result


def _normalised_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS-style distance between feature maps [N, C, H, W]: unit-length channel vectors, squared
    difference summed over channels, averaged over positions -> [N]."""
    a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
    b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
    return (a - b).square().sum(1).flatten(1).mean(1)


class InceptionFeatures(torch.nn.Module):
    """Early feature maps of the metrics' Inception network (NVlabs' FID graph), as a perceptual
    distance: the stem and the first Inception block, on images resized to INCEPTION_INPUT."""

    def __init__(self, device="cpu"):
        super().__init__()
        from trainer.metrics.inception import FeatureNetError, load_inception
        try:
            net, self.info = load_inception(device=device, download=False)
        except FeatureNetError as exc:
            raise LossUnavailable(f"the Inception loss needs the FID network: {exc}") from None
        self.stem = net.layers

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_INPUT, INCEPTION_INPUT), mode="bilinear", align_corners=False)
        s = self.stem
        a = s.conv_2(s.conv_1(s.conv(x)))
        b = s.conv_4(s.conv_3(F.max_pool2d(a, 3, stride=2)))
        c = s.mixed(F.max_pool2d(b, 3, stride=2))
        return [a, b, c]

    def forward(self, images, targets):
        return sum(_normalised_distance(p, q) for p, q in zip(self.features(images), self.features(targets)))


class DiscriminatorFeatures(torch.nn.Module):
    """The run's own discriminator as a feature network: the output of each residual block.
    Its `state/last.pt` holds D at the run's last step (the checkpoint may be older); D is built
    from the run's config.json (an exported generator's config describes G alone), or from
    `config` where the run has none."""

    def __init__(self, checkpoint_path, config: dict, device="cpu"):
        super().__init__()
        from trainer.checkpoint import CheckpointError, load_state
        from trainer.config import ModelConfig, RunConfig
        from trainer.models import build_discriminator
        state_file = discriminator_state_path(checkpoint_path)
        if state_file is None:
            raise LossUnavailable(f"the discriminator loss needs the run's state/last.pt next to "
                                  f"{Path(checkpoint_path).name}'s run directory; there is none "
                                  "(exported or shipped checkpoints often come without it)")
        run_config = state_file.parent.parent / "config.json"
        try:
            state = load_state(state_file)
            model = RunConfig.from_json(run_config.read_text(encoding="utf-8")).model if run_config.is_file() \
                else ModelConfig.from_dict(config)
            D = build_discriminator(model)
            D.load_state_dict(state["D"])
        except (CheckpointError, KeyError, OSError, RuntimeError, ValueError) as exc:
            raise LossUnavailable(f"cannot use the discriminator in {state_file}: {exc}") from None
        self.D = D.eval().requires_grad_(False).to(device)
        self.state_file = str(state_file)

    def features(self, images):
        D, out = self.D, []
        if hasattr(D, "block_resolutions"):   # NVlabs' D (exact StyleGAN2/3 runs): block b<res> reads (x, image)
            x = None
            for res in D.block_resolutions:
                x = getattr(D, f"b{res}")(x, images)
                out.append(x)
            return out
        x = images
        for block in D.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, images, targets):
        return sum(_normalised_distance(p, q) for p, q in zip(self.features(images), self.features(targets)))


def discriminator_state_path(checkpoint_path) -> Path | None:
    """<run>/checkpoints/step-N.safetensors -> <run>/state/last.pt when it exists, else None."""
    path = Path(checkpoint_path)
    for run_dir in (path.parent.parent, path.parent, path):
        candidate = run_dir / "state" / "last.pt"
        if candidate.is_file():
            return candidate
    return None


class LPIPSDistance(torch.nn.Module):
    """LPIPS (VGG16), only where the `lpips` package and its VGG weights are already installed."""

    def __init__(self, device="cpu"):
        super().__init__()
        try:
            import lpips   # noqa: F401 (an optional package)
        except ImportError:
            raise LossUnavailable("the LPIPS loss needs the `lpips` package and its VGG16 weights "
                                  "(pip install lpips, online once); use the inception loss offline") from None
        try:
            self.net = lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False).to(device)
        except Exception as exc:   # the VGG weights are fetched on first use and may be missing
            raise LossUnavailable(f"LPIPS could not load its VGG16 weights ({exc}); they are downloaded "
                                  "on first use, which needs a network") from None

    def forward(self, images, targets):
        if images.shape[1] == 1:
            images, targets = images.expand(-1, 3, -1, -1), targets.expand(-1, 3, -1, -1)
        return self.net(images, targets).flatten(1).mean(1)


class ReconstructionLoss(torch.nn.Module):
    """The weighted sum of the chosen losses, per image [N]. Feature networks load once, here, so
    a missing one is reported before any optimisation starts."""

    def __init__(self,
                 weights: dict[str, float],       # loss name (LOSS_NAMES) -> weight; 0 = off
                 device="cpu",
                 checkpoint_path: str = "",       # for the discriminator loss: where the run is
                 model_config: dict | None = None,  # for the discriminator loss: how to build D
                 ):
        super().__init__()
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"unknown loss(es) {', '.join(unknown)}; known: {', '.join(LOSS_NAMES)}")
        self.weights = {k: float(v) for k, v in weights.items() if v}
        if not self.weights:
            raise ValueError("choose at least one loss with a weight above 0")
        self.networks = torch.nn.ModuleDict()
        if "inception" in self.weights:
            self.networks["inception"] = InceptionFeatures(device)
        if "discriminator" in self.weights:
            self.networks["discriminator"] = DiscriminatorFeatures(checkpoint_path, model_config or {}, device)
        if "lpips" in self.weights:
            self.networks["lpips"] = LPIPSDistance(device)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(images.shape[0], device=images.device, dtype=images.dtype)
        for name, weight in self.weights.items():
            if name == "mse":
                term = (images - targets).square().flatten(1).mean(1)
            elif name == "detail":
                term = detail_error(images, targets)
            elif name == "l1":
                term = (images - targets).abs().flatten(1).mean(1)
            elif name == "ssim":
                term = 1 - ssim(images, targets)
            elif name == "ms_ssim":
                term = 1 - ms_ssim(images, targets)
            else:
                term = self.networks[name](images, targets)
            total = total + weight * term
        return total
