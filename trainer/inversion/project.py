"""Inversion: find the W / W+ latent that draws a photo, optionally with pivotal tuning (PTI).

`project` optimises a batch of targets at once (one latent per image, one synthesis call per step
for all of them; each image's loss is its own, so results do not depend on the batch). It follows
NVlabs' `projector.py` where asked (Adam, learning-rate warm-up and cosine ramp-down, noise on w
that decays, noise buffers optimised with their autocorrelation regulariser) and adds what users
ask for: W+, better starts (class means, best of N random w), several losses, e4e's pull of the
layers toward one w, and a best-so-far latent that survives a cancel.

Pivotal tuning lives in trainer/pti.py, the result files in trainer/inversion_file.py.

No Qt here: the CLI, the benchmark and the studio's worker all call these functions.
"""
from __future__ import annotations

import dataclasses
import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from trainer.inversion.encoder import encoder_for_inversion, predicted_start
from trainer.inversion.last_layer import LastLayerSolver, solvable
from trainer.inversion.losses import DEFAULT_LOSSES, LOSS_NAMES, ReconstructionLoss, psnr, ssim
from trainer.latents import has_input_transform, noise_layers, noise_override  # noqa: F401 - noise_override: PTI, tests

SPACES = ("w", "w+")
INITS = ("auto", "encoder", "best_of_n", "class_mean", "w_avg")
SCHEDULES = ("nvlabs", "constant")
W_STD_SAMPLES = 2000          # mapped z for the scale of W (NVlabs use 10000; the mean is stable long before)
W_STD_SEED = 4321             # fixes those z, so the noise on w repeats
# Style directions weaker than this fraction of a layer's strongest are not stepped along: through the
# pseudo-inverse they cost huge moves in w (|w| up to 500 on the demo without the cut, against 9 for
# plain W+ steps, which ruins editing). 0.1 fits 0.9 dB better than 0.2 at 100 steps on the demo, and
# its results edit as well as the plain 1000-step W+ baseline's (benchmarks/README.md#inversion).
STYLE_PINV_RTOL = 0.1


class InversionError(ValueError):
    """An inversion that cannot run on this model or these inputs; the message says why."""


@dataclass(frozen=True, eq=False)
class ProjectionSettings:
    """How to fit a latent. The defaults are the fast settings benchmarks/inversion.py arrived at."""
    space: str = "w+"               # "w": one w for all layers; "w+": one w per layer
    precondition: bool = True       # w+: take steps in each layer's style coordinates (see StylePreconditioner)
    solve_last_layer: bool = True   # with those: solve the last layer exactly each step where it draws linearly
                                    # (NVlabs' StyleGAN2, MSE and detail losses; inversion/last_layer.py): +2.0 dB
                                    # at 100 steps on the demo
    optimize_noise: bool = True     # also fit the per-pixel noise maps: they take the detail W+ cannot draw
    steps: int = 100                # optimisation steps
    lr: float = 0.3                 # Adam's peak learning rate (NVlabs: 0.1, for plain W)
    schedule: str = "nvlabs"        # "nvlabs": warm-up then cosine ramp-down; "constant"
    lr_rampup: float = 0.2          # fraction of the steps spent warming up (NVlabs: 0.05; 0.2 gains 2.2 dB
                                    # at 100 steps on the demo, and at 40 and 300 steps too)
    lr_rampdown: float = 0.1        # fraction of the steps at the end spent ramping down (NVlabs: 0.25)
    w_noise: float = 0.0            # initial noise on w, times W's std (NVlabs: 0.05); decays to 0
    w_noise_ramp: float = 0.75      # fraction of the steps after which w has no noise
    noise_regularize: float = 0.3   # weight of the noise maps' autocorrelation penalty (NVlabs: 1e5, against
                                    # an LPIPS loss; with MSE that keeps the maps from fitting anything)
    layer_regularize: float = 0.0   # e4e-style pull of each layer's w toward the mean of the layers
    losses: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSSES))  # name -> weight;
                                    # "detail" weighs the residual's fine detail (losses.detail_error): +0.6 dB
                                    # at 100 steps on 100 demo test images, +0.7 at 300, +0.4 on a photo outside
                                    # the demo's domain
    init: str = "auto"              # "auto": "encoder" when one for the checkpoint exists, else "best_of_n";
                                    # "encoder" (trainer/encoder.py's W+ prediction) | "best_of_n" (random w,
                                    # class means, w_avg) | "class_mean" | "w_avg"
    encoder: str = ""               # an encoder file; "" = look beside the checkpoint (trainer.inversion.encoder.find_encoder)
    init_samples: int = 512         # random w tried by best_of_n
    seed: int = 0                   # fixes best_of_n's samples and the noise on w
    report_every: int = 10          # steps between records (and previews)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space {self.space!r}: expected w or w+")
        if self.init not in INITS:
            raise ValueError(f"init {self.init!r}: expected one of {', '.join(INITS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if not 1 <= int(self.steps) <= 100_000:
            raise ValueError(f"steps {self.steps!r}: expected 1 to 100000")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate {self.lr!r} must be a positive number")
        unknown = sorted(set(self.losses) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"unknown loss(es) {', '.join(unknown)}; known: {', '.join(LOSS_NAMES)}")
        if not any(float(v) > 0 for v in self.losses.values()):
            raise ValueError("choose at least one loss with a weight above 0")
        object.__setattr__(self, "losses", {k: float(v) for k, v in self.losses.items() if float(v)})

    def replace(self, **changes) -> "ProjectionSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["losses"] = dict(self.losses)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ProjectionSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"projection settings: unknown key(s) {', '.join(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class Report:
    """One reported step, as plain data (it crosses threads in the studio)."""
    phase: str                    # "project" | "tune"
    step: int                     # steps done in this phase
    steps: int                    # steps planned in this phase
    loss: np.ndarray              # [N] reconstruction loss per image at this step
    psnr: np.ndarray              # [N] dB, of the best latent so far
    ssim: np.ndarray              # [N] of the best latent so far
    preview: np.ndarray | None    # uint8 [N, H, W, C] the best reconstruction so far


@dataclass(eq=False)
class ProjectionResult:
    ws: np.ndarray                        # [N, num_ws, w_dim] float32, the best latent per image
    noise: dict[str, np.ndarray]          # layer -> [N, H, W] float32 fitted noise; {} when not fitted
    reconstruction: np.ndarray            # uint8 [N, H, W, C]
    psnr: np.ndarray                      # [N] dB
    ssim: np.ndarray                      # [N]
    classes: list[int | None]             # the class each start came from (conditional models)
    start: str                            # the start used: "encoder", "best_of_n", "class_mean" or "w_avg"
    notes: tuple[str, ...]                # for the user: e.g. why an encoder was not used
    record: dict[str, np.ndarray]         # "step" [R], "loss"/"psnr"/"ssim" [R, N]
    steps_done: int
    cancelled: bool
    seconds: float
    settings: ProjectionSettings


# ---- checks ----
def check_invertible(G) -> None:
    """Raise InversionError for models this projector cannot invert, with the reason."""
    if getattr(G, "img_resolution", 0) == 0:
        raise InversionError("this model draws 2-D points, not images: there is no photo to invert into it")
    if not getattr(G, "num_ws", 0):
        raise InversionError("this model has no W space (it is not style-based), so a photo cannot be "
                             "projected into W or W+; open a StyleGAN2 or StyleGAN3 checkpoint to invert photos")


def target_tensor(pixels: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 [H, W, C] or [N, H, W, C] -> float [N, C, H, W] in [-1, 1]."""
    arr = np.asarray(pixels)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C] (C as the model draws it)."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ---- noise buffers ----
def noise_regularisation(maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """NVlabs' penalty on noise maps [N, 1, H, W] -> [N]: squared autocorrelation at one-pixel
    shifts, at every scale down to 8x8, so the maps cannot smuggle the image in as structure."""
    total = None
    for noise in maps.values():
        n = noise
        while True:
            term = (n * torch.roll(n, shifts=1, dims=3)).flatten(1).mean(1).square() \
                + (n * torch.roll(n, shifts=1, dims=2)).flatten(1).mean(1).square()
            total = term if total is None else total + term
            if n.shape[2] <= 8:
                break
            n = torch.nn.functional.avg_pool2d(n, 2)
    return total


def _normalise_noise(maps: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n in maps.values():
            mean = n.mean(dim=(1, 2, 3), keepdim=True)
            std = n.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            n.sub_(mean).div_(std)


# ---- W statistics and starts ----
_STATISTICS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _cached(G, key: str, compute):
    """W statistics and class centres, computed once per generator (they cost more than a short run)."""
    store = _STATISTICS.setdefault(G, {})
    if key not in store:
        store[key] = compute()
    return store[key]


def w_statistics(G, device) -> tuple[torch.Tensor, float]:
    """(mean w [w_dim], NVlabs' scalar std of W: sqrt of the summed per-dimension variance)."""
    return _cached(G, "w_statistics", lambda: _w_statistics(G, device))


@torch.no_grad()
def _w_statistics(G, device) -> tuple[torch.Tensor, float]:
    gen = torch.Generator(device="cpu").manual_seed(W_STD_SEED)
    z = torch.randn(W_STD_SAMPLES, G.z_dim, generator=gen).to(device)
    c = torch.randint(0, G.c_dim, (W_STD_SAMPLES,), generator=gen).to(device) if G.c_dim else None
    w = G.mapping(z, c)[:, 0].float()
    mean = w.mean(0)
    return mean, float((w - mean).square().sum(1).mean().sqrt())


@torch.no_grad()
def starting_w(G,
               targets: torch.Tensor,              # [N, C, H, W] in [-1, 1]
               settings: ProjectionSettings,
               classes: list[int | None] | None,   # per image: a class, or None to search (conditional models)
               class_means: torch.Tensor | None = None,  # [c_dim, w_dim] known centres, else estimated
               ) -> tuple[torch.Tensor, list[int | None]]:
    """The start of each image's optimisation -> (w [N, w_dim], the class each came from).

    w_avg: the global mean. class_mean: the image's class centre, or the centre (of all classes)
    whose image is closest to the target in pixels. best_of_n: the closest of `init_samples` random
    w (drawn from the image's class, or all classes), the class centres and w_avg."""
    device = targets.device
    n = targets.shape[0]
    classes = list(classes) if classes is not None else [None] * n
    check_classes(G, classes)
    if settings.init == "w_avg" or (settings.init == "class_mean" and not G.c_dim):
        return G.w_avg.float().expand(n, -1).clone(), [None] * n
    if G.c_dim and class_means is None:
        from trainer.latents import estimate_class_means
        class_means = _cached(G, "class_means", lambda: estimate_class_means(G, device))
    candidates, labels = [], []      # candidate w [K, w_dim] and the class each belongs to
    if G.c_dim:
        candidates.append(class_means.float().to(device))
        labels += list(range(G.c_dim))
    else:
        candidates.append(G.w_avg.float()[None])
        labels.append(None)
    if settings.init == "best_of_n":
        gen = torch.Generator(device="cpu").manual_seed(int(settings.seed))
        z = torch.randn(settings.init_samples, G.z_dim, generator=gen).to(device)
        wanted = sorted({k for k in classes if k is not None}) if all(k is not None for k in classes) else None
        if G.c_dim:
            pool = wanted or list(range(G.c_dim))
            drawn = [pool[i % len(pool)] for i in range(settings.init_samples)]
            c = torch.tensor(drawn, device=device)
        else:
            drawn, c = [None] * settings.init_samples, None
        candidates.append(G.mapping(z, c)[:, 0].float())
        labels += drawn
    pool_w = torch.cat(candidates)                                # [K, w_dim]
    errors = torch.empty(n, len(pool_w), device=device)
    for start in range(0, len(pool_w), 128):
        w = pool_w[start:start + 128]
        images = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise_mode="const").float()
        errors[:, start:start + len(w)] = (images[None] - targets[:, None]).square().flatten(2).mean(2)
    allowed = torch.ones_like(errors, dtype=torch.bool)
    for i, k in enumerate(classes):
        if k is not None and G.c_dim:
            allowed[i] = torch.tensor([lbl == k for lbl in labels], device=device)
    best = errors.masked_fill(~allowed, float("inf")).argmin(1)
    return pool_w[best].clone(), [labels[int(j)] for j in best]


def check_classes(G, classes: list[int | None]) -> None:
    """Raise InversionError for a class a conditional model does not have."""
    for k in classes if G.c_dim else ():
        if k is not None and not 0 <= int(k) < G.c_dim:
            raise InversionError(f"class {k} is out of range for a model with {G.c_dim} classes (0-{G.c_dim - 1})")


def learning_rate(settings: ProjectionSettings, t: float) -> float:
    """The learning rate at progress t in [0, 1): NVlabs' warm-up and cosine ramp-down, or constant."""
    if settings.schedule == "constant":
        return settings.lr
    ramp = min(1.0, (1.0 - t) / max(settings.lr_rampdown, 1e-8))
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / max(settings.lr_rampup, 1e-8))
    return settings.lr * ramp


class StylePreconditioner:
    """W+ moved in style coordinates. Each ws layer feeds one or two affines (a convolution's and a
    toRGB's); their outputs, the styles, are what the convolutions see. Adam takes its steps on a
    style offset ds_l, and ws_l = start_l + pinv(A_l) ds_l: an ordinary W+ latent, with steps scaled
    as the synthesis network sees them (+1.2 dB at 100 steps on the demo against plain W+ steps).
    Directions A_l ignores (which change no pixel) stay as the start has them."""

    def __init__(self, G, start: torch.Tensor):   # start: [N, num_ws, w_dim]
        self.start = start.detach()
        self.pinv = [torch.linalg.pinv(a.float(), rtol=STYLE_PINV_RTOL) for a in layer_affine_matrices(G)]  # [w_dim, S_l]
        self.offsets = [torch.zeros(start.shape[0], p.shape[1], device=start.device, requires_grad=True)
                        for p in self.pinv]

    def ws(self, offsets: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The W+ latent of these style offsets (default: the optimised ones) [N, num_ws, w_dim]."""
        offsets = self.offsets if offsets is None else offsets
        return torch.stack([self.start[:, l] + d @ p.T for l, (d, p) in enumerate(zip(offsets, self.pinv))], 1)


def layer_affine_matrices(G) -> list[torch.Tensor]:
    """Per ws layer, the stacked weights [S_l, w_dim] of the affines that read it (StyleGAN2: a
    block's convolutions read its own layers, its toRGB the next block's first; StyleGAN3: the
    Fourier input's transform affine reads ws 0, layer i's affine ws i + 1, ToRGB last)."""
    if has_input_transform(G):
        affines = [G.synthesis.input.affine] + [layer.affine for layer in G.synthesis.layers]
        return [(a.weight * a.weight_gain).detach() for a in affines]
    rows: list[list[torch.Tensor]] = [[] for _ in range(G.num_ws)]
    index = 0
    for block in G.synthesis.blocks:
        conv0 = getattr(block, "conv0", None)   # the first block has none (NVlabs' code: no attribute at all)
        convs = [block.conv1] if conv0 is None else [conv0, block.conv1]
        for k, conv in enumerate(convs):
            rows[index + k].append(conv.affine.weight * conv.affine.weight_gain)
        rows[index + len(convs)].append(block.torgb.affine.weight * block.torgb.affine.weight_gain)
        index += len(convs)
    return [torch.cat(r).detach() for r in rows]


def can_precondition(G) -> bool:
    """Whether the synthesis network has the block layout layer_affine_matrices reads."""
    try:
        matrices = layer_affine_matrices(G)
    except (AttributeError, IndexError, RuntimeError, TypeError):
        return False
    return len(matrices) == G.num_ws and all(m.shape[1] == G.w_dim for m in matrices)


# ---- the projector ----
def project(G,
            targets: torch.Tensor,                  # [N, C, H, W] in [-1, 1], on G's device
            settings: ProjectionSettings = ProjectionSettings(),
            classes: list[int | None] | None = None,  # per image: its class, or None to search
            loss: ReconstructionLoss | None = None,   # built from settings.losses when None
            class_means: torch.Tensor | None = None,  # [c_dim, w_dim] the studio's class centres
            on_report: Callable[[Report], None] | None = None,  # every report_every steps
            should_stop: Callable[[], bool] | None = None,      # checked each step: True = stop, keep the best
            checkpoint_path: str = "",              # for the discriminator loss
            ) -> ProjectionResult:
    """Fit one latent per target -> ProjectionResult (the best latent each image reached)."""
    check_invertible(G)
    started = time.perf_counter()
    device = targets.device
    if targets.ndim != 4 or targets.shape[1:] != (G.img_channels, G.img_resolution, G.img_resolution):
        raise InversionError(f"targets have shape {tuple(targets.shape)}, the model draws "
                             f"[N, {G.img_channels}, {G.img_resolution}, {G.img_resolution}]")
    targets = targets.float()
    n, num_ws = targets.shape[0], G.num_ws
    own_loss = loss is None   # a loss passed in may not be the settings' one the last-layer solve assumes
    if loss is None:
        loss = ReconstructionLoss(settings.losses, device, checkpoint_path,
                                  getattr(G, "checkpoint_info", {}).get("config"))
    _, w_std = w_statistics(G, device)
    encoder, note = (None, "") if settings.init not in ("auto", "encoder") else \
        encoder_for_inversion(G, settings.init == "encoder", settings.encoder,
                              checkpoint_path or getattr(G, "checkpoint_info", {}).get("path", ""))
    notes = (note,) if note else ()
    if encoder is not None:
        check_classes(G, list(classes) if classes is not None else [])
        if G.c_dim and class_means is None:
            from trainer.latents import estimate_class_means
            class_means = _cached(G, "class_means", lambda: estimate_class_means(G, device))
        start_ws, start_classes = predicted_start(G, encoder, targets, classes, class_means)
        start_name = "encoder"
    else:
        start_name = "best_of_n" if settings.init in ("auto", "encoder") else settings.init
        start, start_classes = starting_w(G, targets, settings.replace(init=start_name), classes, class_means)
        start_ws = start[:, None, :].expand(n, num_ws, -1)
    layers = 1 if settings.space == "w" else num_ws
    latent = (start_ws.mean(1, keepdim=True) if layers == 1 else start_ws).clone().requires_grad_(True)  # [N, 1 or num_ws, w_dim]
    styles = None
    if settings.space == "w+" and settings.precondition and can_precondition(G):
        styles = StylePreconditioner(G, latent)
    solver = LastLayerSolver(G, styles, settings.losses) \
        if styles and own_loss and settings.solve_last_layer and solvable(G, settings.losses) else None
    maps = {}
    if settings.optimize_noise:   # start from the model's own noise, so 0 steps draw what the studio draws
        maps = {name: layer.noise_const.detach().float()[None, None].repeat(n, 1, 1, 1).requires_grad_(True)
                for name, layer in noise_layers(G).items()}
        if not maps:   # StyleGAN3 draws without per-pixel noise: the latent alone is fitted
            notes += ("this model has no noise maps, so only the latent was fitted",)
    stepped = (styles.offsets[:-1] if solver else styles.offsets) if styles else [latent]
    optimizer = torch.optim.Adam([*stepped, *maps.values()], lr=settings.lr,
                                 betas=(0.9, 0.999))
    gen = torch.Generator(device="cpu").manual_seed(int(settings.seed) + 1)

    best_loss = torch.full((n,), float("inf"), device=device)
    best_ws = latent.detach().expand(n, num_ws, -1).clone()
    best_maps = {k: v.detach().clone() for k, v in maps.items()}
    best_images = torch.zeros_like(targets)
    record = {"step": [], "loss": [], "psnr": [], "ssim": []}
    steps_done, cancelled = 0, False

    def report(step, current_loss):
        q = {"psnr": psnr(best_images, targets), "ssim": ssim(best_images, targets)}
        record["step"].append(step)
        record["loss"].append(current_loss.cpu().numpy())
        record["psnr"].append(q["psnr"].cpu().numpy())
        record["ssim"].append(q["ssim"].cpu().numpy())
        if on_report is not None:
            on_report(Report("project", step, settings.steps, record["loss"][-1], record["psnr"][-1],
                             record["ssim"][-1], to_uint8_nhwc(best_images)))

    for step in range(settings.steps):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        t = step / settings.steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, t)
        ws = solver.ws() if solver else styles.ws() if styles else latent.expand(n, num_ws, -1) if layers == 1 else latent
        noise_scale = w_std * settings.w_noise * max(0.0, 1.0 - t / max(settings.w_noise_ramp, 1e-8)) ** 2
        if noise_scale > 0:
            ws = ws + torch.randn(ws.shape, generator=gen).to(device) * noise_scale
        with noise_override(G, maps):
            if solver:
                ws, images = solver.draw(ws, targets)
            else:
                images = G.synthesis(ws, noise_mode="const").float()
        per_image = loss(images, targets)
        total = per_image
        if maps and settings.noise_regularize:
            total = total + settings.noise_regularize * noise_regularisation(maps)
        if settings.layer_regularize and layers > 1:
            total = total + settings.layer_regularize * (ws - ws.mean(1, keepdim=True)).square().sum(2).mean(1)
        with torch.no_grad():
            better = per_image.detach() < best_loss
            best_loss = torch.where(better, per_image.detach(), best_loss)
            best_ws[better] = ws.detach()[better]
            best_images[better] = images.detach()[better]
            for name, m in maps.items():
                best_maps[name][better] = m.detach()[better]
        optimizer.zero_grad(set_to_none=True)
        total.sum().backward()
        optimizer.step()
        if maps:
            _normalise_noise(maps)
        steps_done = step + 1
        if steps_done % settings.report_every == 0 or steps_done == settings.steps:
            report(steps_done, per_image.detach())

    with torch.no_grad(), noise_override(G, best_maps):
        final = G.synthesis(best_ws, noise_mode="const").float()
    if steps_done and (not record["step"] or record["step"][-1] != steps_done):
        best_images = final
        report(steps_done, best_loss)
    return ProjectionResult(
        ws=best_ws.cpu().numpy().astype(np.float32),
        noise={k: v[:, 0].cpu().numpy().astype(np.float32) for k, v in best_maps.items()},
        reconstruction=to_uint8_nhwc(final), psnr=psnr(final, targets).cpu().numpy(),
        ssim=ssim(final, targets).cpu().numpy(), classes=start_classes, start=start_name, notes=notes,
        record={k: np.asarray(v) for k, v in record.items()} if record["step"] else
        {"step": np.zeros(0, int), "loss": np.zeros((0, n)), "psnr": np.zeros((0, n)), "ssim": np.zeros((0, n))},
        steps_done=steps_done, cancelled=cancelled, seconds=time.perf_counter() - started, settings=settings)
