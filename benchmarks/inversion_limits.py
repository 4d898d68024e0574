"""Why 100 projection steps do not reach the plain 1000-step W+ baseline on the exact demo: three
probes of what bounds a 100-step fit, each against the defaults run in the same process.

  * a better optimiser: L-BFGS (strong-Wolfe line search) on the same style-space offsets the
    defaults give Adam, for as many iterations, on the whole batch and image by image (its
    curvature pairs are only meaningful per image; the line search costs a few more evaluations);
  * a better start: the defaults' 100 steps from the latents a k-step run reached, standing in for
    an encoder as good as that (the shipped encoder starts at about 22.7 dB);
  * a wider step space: the pseudo-inverse cut of the style preconditioner (STYLE_PINV_RTOL, 0.2 so
    that latents stay editable) lowered, with the distance from w_avg it costs;
  * Adam's own settings: a shorter second-moment memory (beta2; with 0.999 the large early
    gradients keep later steps small), other warm-up lengths, NAdam, and the noise maps left out;
  * second-order steps: Gauss-Newton (Levenberg-Marquardt damping) with conjugate gradients on the
    style offsets (Hessian-free: J v by forward-mode AD, J^T u by reverse mode), plain and with a
    Jacobi preconditioner from Hutchinson estimates of diag(J^T J), at about the defaults' time;
  * the residual weighted toward fine detail: MSE plus w times the MSE of the residual's high-pass
    part (residual minus its 3x3 binomial blur), at one or two levels, so the slow fine-detail
    directions get more of each step (PSNR is still measured as plain MSE);
  * a whitened step space: Adam on all of W+ at once in the eigenbasis of the average Gauss-Newton
    matrix E[J^T J] (estimated from random pixel-space vectors pulled back through G at 2,048
    sample latents), each eigen-direction scaled by (eigenvalue + lam * largest)^-power, in place
    of the per-layer style coordinates;
  * variable projection: the last toRGB reads the last ws layer alone and draws linearly in its
    styles, so each step solves that layer exactly (regularised least squares on the defaults'
    loss, Tikhonov toward the start with weight lam) and gives Adam the other layers.

  python benchmarks/inversion_limits.py [--images 20] [--threads 1]
                                        [--probes lbfgs,start,rtol,adam,gauss-newton,highpass,
                                                whitened,varpro]

The first --images Fashion-MNIST test images, the demo and its encoder as the studio finds them.
Prints one line per setting: mean PSNR (dB), function evaluations, seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=20, help="first N Fashion-MNIST test images")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--probes", default="lbfgs,start,rtol,adam,gauss-newton,highpass,whitened,varpro",
                   help="which probes to run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import trainer.inversion.project as projection
    from inversion import demo_and_test_images   # benchmarks/inversion.py: the same demo and images
    from trainer.inversion.encoder import encoder_for_inversion, predicted_start
    from trainer.inversion.losses import psnr
    from trainer.inversion.project import ProjectionSettings, StylePreconditioner, project
    from trainer.latents import estimate_class_means

    checkpoint, G, _, targets = demo_and_test_images(args.images)
    n = args.images
    defaults = ProjectionSettings()
    probes = set(args.probes.split(","))
    print(f"demo {Path(checkpoint).name}, {n} test images, {torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.2f}")

    def encoder_start():
        """The W+ the demo's encoder predicts for the targets, as the defaults start."""
        encoder, _ = encoder_for_inversion(G, True, "", str(checkpoint))
        class_means = estimate_class_means(G, "cpu") if G.c_dim else None
        with torch.no_grad():
            return predicted_start(G, encoder, targets, None, class_means)[0]

    started = time.perf_counter()
    reference = project(G, targets, defaults)
    print(f"defaults, {defaults.steps} Adam steps: {reference.psnr.mean():.2f} dB, "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    if "lbfgs" in probes:
        encoder, _ = encoder_for_inversion(G, True, "", str(checkpoint))
        class_means = estimate_class_means(G, "cpu") if G.c_dim else None
        for per_image in (False, True):
            started, evaluations, fitted = time.perf_counter(), 0, []
            for part in ([slice(i, i + 1) for i in range(n)] if per_image else [slice(0, n)]):
                target = targets[part]
                with torch.no_grad():
                    start, _ = predicted_start(G, encoder, target, None, class_means)
                styles = StylePreconditioner(G, start)
                optimizer = torch.optim.LBFGS(styles.offsets, lr=1.0, max_iter=defaults.steps, history_size=20,
                                              line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                                              tolerance_change=1e-15)

                def closure():
                    nonlocal evaluations
                    optimizer.zero_grad()
                    images = G.synthesis(styles.ws(), noise_mode="const").float()
                    loss = (images - target).square().flatten(1).mean(1).sum()
                    loss.backward()
                    evaluations += 1
                    return loss

                optimizer.step(closure)
                with torch.no_grad():
                    fitted.append(psnr(G.synthesis(styles.ws(), noise_mode="const").float(), target))
            groups = n if per_image else 1
            print(f"L-BFGS, {defaults.steps} iterations, {'image by image' if per_image else 'whole batch'}: "
                  f"{torch.cat(fitted).mean():.2f} dB, {evaluations / groups:.0f} evaluations each, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

    if "start" in probes:
        original = projection.predicted_start
        for k in (10, 25, 50):
            first = project(G, targets, defaults.replace(steps=k))   # from the encoder
            start = torch.from_numpy(first.ws)
            projection.predicted_start = lambda *_, start=start: (start, [None] * n)
            try:
                second = project(G, targets, defaults.replace(optimize_noise=False))
            finally:
                projection.predicted_start = original
            print(f"start at {first.psnr.mean():.2f} dB (a {k}-step fit), then {defaults.steps} steps: "
                  f"{second.psnr.mean():.2f} dB", flush=True)

    if "rtol" in probes:
        original = projection.STYLE_PINV_RTOL
        try:
            for rtol in (0.2, 0.1, 0.05, 0.01):
                projection.STYLE_PINV_RTOL = rtol
                for lr in (0.3, 0.6):
                    r = project(G, targets, defaults.replace(lr=lr))
                    distance = torch.from_numpy(r.ws).sub(G.w_avg).norm(dim=2).mean()
                    print(f"pinv rtol {rtol}, lr {lr}: {r.psnr.mean():.2f} dB, |ws - w_avg| {distance:.1f}",
                          flush=True)
        finally:
            projection.STYLE_PINV_RTOL = original

    if "adam" in probes:
        for name, optimizer, beta2, changes in (
                ("Adam, beta2 0.99", "Adam", 0.99, {}),
                ("Adam, beta2 0.9", "Adam", 0.9, {}),
                ("Adam, beta2 0.9, warm-up 0.1", "Adam", 0.9, {"lr_rampup": 0.1}),
                ("Adam, beta2 0.9, warm-up 0.05, ramp-down 0.3", "Adam", 0.9, {"lr_rampup": 0.05, "lr_rampdown": 0.3}),
                ("Adam, beta2 0.9, lr 0.5", "Adam", 0.9, {"lr": 0.5}),
                ("NAdam", "NAdam", 0.999, {}),
                ("Adam, no noise maps", "Adam", 0.999, {"optimize_noise": False}),
                ("Adam, noise maps unregularised", "Adam", 0.999, {"noise_regularize": 0.0})):
            with adam_replaced(getattr(torch.optim, optimizer), beta2):
                started = time.perf_counter()
                r = project(G, targets, defaults.replace(**changes))
            distance = torch.from_numpy(r.ws).sub(G.w_avg).norm(dim=2).mean()
            print(f"{name}: {r.psnr.mean():.2f} dB, |ws - w_avg| {distance:.1f}, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

    if "gauss-newton" in probes:
        start = encoder_start()
        for jacobi in (False, True):
            for outer, inner in ((5, 10), (3, 18)):
                started = time.perf_counter()
                fitted, evaluations = gauss_newton(G, start, targets, outer, inner, jacobi)
                print(f"Gauss-Newton, {outer} steps of {inner} conjugate gradients"
                      f"{', Jacobi-preconditioned' if jacobi else ''}: {psnr(fitted, targets).mean():.2f} dB, "
                      f"{evaluations:.0f} evaluations, {time.perf_counter() - started:.1f} s", flush=True)

    if "highpass" in probes:
        for weights in ((1.0,), (3.0,), (10.0,), (3.0, 3.0)):
            started = time.perf_counter()
            r = project(G, targets, defaults, loss=HighPassWeighted(weights))
            print(f"MSE + high-pass residual, weights {', '.join(f'{w:g}' for w in weights)}: "
                  f"{r.psnr.mean():.2f} dB, {time.perf_counter() - started:.1f} s", flush=True)

    if "whitened" in probes:
        started = time.perf_counter()
        curvature = average_gauss_newton(G)
        print(f"E[J^T J] over W+ ({len(curvature[0])} dims) from 2048 latents in {time.perf_counter() - started:.1f} s: "
              f"eigenvalues {curvature[0][-1]:.3g} largest, {curvature[0][len(curvature[0]) // 2]:.3g} median",
              flush=True)
        for lam, power, lr in ((1e-3, 0.0, 0.3), (1e-3, 0.25, 0.1), (1e-2, 0.25, 0.1), (1e-2, 0.35, 0.1),
                               (3e-2, 0.25, 0.05)):
            original = projection.StylePreconditioner
            projection.StylePreconditioner = lambda G, start, lam=lam, power=power: \
                WhitenedOffsets(G, start, curvature, lam, power)
            try:
                started = time.perf_counter()
                r = project(G, targets, defaults.replace(lr=lr))
            finally:
                projection.StylePreconditioner = original
            distance = torch.from_numpy(r.ws).sub(G.w_avg).norm(dim=2).mean()
            print(f"whitened W+, lam {lam:g}, power {power:g}, lr {lr:g}: {r.psnr.mean():.2f} dB, "
                  f"|ws - w_avg| {distance:.1f}, {time.perf_counter() - started:.1f} s", flush=True)

    if "varpro" in probes:
        start = encoder_start()
        for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            started = time.perf_counter()
            fitted, ws = variable_projection(G, start, targets, defaults, lam)
            distance = ws.sub(G.w_avg).norm(dim=2).mean()
            print(f"variable projection of the last layer, lam {lam:g}: {psnr(fitted, targets).mean():.2f} dB, "
                  f"|ws - w_avg| {distance:.1f}, {time.perf_counter() - started:.1f} s", flush=True)
    return 0


class HighPassWeighted:
    """Per image: MSE + sum_l w_l MSE(level l of the residual's Laplacian pyramid, finest first)."""

    def __init__(self, weights):
        self.weights = weights

    def __call__(self, images, targets):
        from trainer.inversion.losses import binomial_blur   # the detail loss's blur
        residual = images - targets
        total = residual.square().flatten(1).mean(1)
        for weight in self.weights:
            low = binomial_blur(residual)
            total = total + weight * (residual - low).square().flatten(1).mean(1)
            residual = low
        return total


@contextlib.contextmanager
def adam_replaced(optimizer, beta2: float):
    """Within the block, the projector's torch.optim.Adam is `optimizer` with this beta2."""
    class Replaced(optimizer):
        def __init__(self, params, lr, betas):
            super().__init__(params, lr=lr, betas=(betas[0], beta2))
    original, torch.optim.Adam = torch.optim.Adam, Replaced
    try:
        yield
    finally:
        torch.optim.Adam = original


def gauss_newton(G, start, targets, outer: int, inner: int, jacobi: bool, damping: float = 1e-3,
                 probes: int = 8):
    """Levenberg-Marquardt on the style offsets of StylePreconditioner, each step solved by `inner`
    conjugate-gradient iterations on (J^T J + damping) d = -J^T r, per image (dot products per image,
    one batched call for all). Returns (the fitted images, synthesis-sized evaluations per image)."""
    from trainer.inversion.project import StylePreconditioner
    styles = StylePreconditioner(G, start)
    sizes = [d.shape[1] for d in styles.offsets]

    def dot(a, b):
        return (a * b).sum(1)

    for p in G.parameters():
        p.requires_grad_(False)
    x = torch.zeros(len(targets), sum(sizes))
    lam = torch.full((len(targets),), damping)
    evaluations = 0.0
    for _ in range(outer):
        images, vjp = torch.func.vjp(lambda v: draw_pure(G, styles, sizes, v), x)
        residual = images - targets
        loss = residual.square().flatten(1).sum(1)
        gradient = vjp(residual)[0]
        evaluations += 1
        diagonal = torch.ones_like(x)
        if jacobi:
            diagonal = sum(vjp(torch.randint(0, 2, residual.shape).float() * 2 - 1)[0].square()
                           for _ in range(probes)) / probes
            evaluations += probes / 2   # a backward pass without its forward
        inverse = 1 / (diagonal + lam[:, None] + 1e-12)

        def curvature(v):
            _, jv = torch.func.jvp(lambda u: draw_pure(G, styles, sizes, u), (x,), (v,))
            return vjp(jv)[0] + lam[:, None] * v

        step, rest = torch.zeros_like(x), -gradient
        z = inverse * rest
        direction, rz = z.clone(), dot(rest, z)
        for _ in range(inner):
            cd = curvature(direction)
            evaluations += 1
            alpha = rz / dot(direction, cd).clamp_min(1e-30)
            step = step + alpha[:, None] * direction
            rest = rest - alpha[:, None] * cd
            z = inverse * rest
            rz, previous = dot(rest, z), rz
            direction = z + (rz / previous.clamp_min(1e-30))[:, None] * direction
        with torch.no_grad():
            new_loss = (draw_pure(G, styles, sizes, x + step) - targets).square().flatten(1).sum(1)
            _, j_step = torch.func.jvp(lambda u: draw_pure(G, styles, sizes, u), (x,), (step,))
            predicted = loss - (residual + j_step).square().flatten(1).sum(1)
            evaluations += 2
            ratio = (loss - new_loss) / predicted.clamp_min(1e-30)
            x = torch.where((new_loss < loss)[:, None], x + step, x)
            lam = torch.where(ratio > 0.75, lam / 3, torch.where(ratio < 0.25, lam * 2, lam))
    with torch.no_grad():
        return draw_pure(G, styles, sizes, x), evaluations


def average_gauss_newton(G, samples: int = 2048, batch: int = 32, psi: float = 0.7, seed: int = 0):
    """Eigen-decomposition (ascending eigenvalues, eigenvectors as columns) of E[J^T J], J the
    Jacobian of the pixels by the flattened W+ latent, over latents like an inversion's: random z
    and classes at psi, half of them mixed with a second z from a random layer on. J^T e for
    Gaussian pixel noise e has covariance J^T J, so each backward pass gives a batch of samples."""
    for p in G.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    size = G.num_ws * G.w_dim
    total = torch.zeros(size, size, dtype=torch.float64)
    for _ in range(samples // batch):
        c = torch.nn.functional.one_hot(torch.randint(0, G.c_dim, (batch,), generator=gen), G.c_dim).float() \
            if G.c_dim else None
        with torch.no_grad():
            ws = G.mapping(torch.randn(batch, G.z_dim, generator=gen), c, truncation_psi=psi)
            other = G.mapping(torch.randn(batch, G.z_dim, generator=gen), c, truncation_psi=psi)
            cut = torch.randint(1, G.num_ws, (batch, 1), generator=gen)
            mixed = (torch.arange(G.num_ws)[None] >= cut) & (torch.rand(batch, 1, generator=gen) < 0.5)
            ws = torch.where(mixed[..., None], other, ws)
        ws.requires_grad_(True)
        images = G.synthesis(ws, noise_mode="const").float()
        pulled, = torch.autograd.grad((images * torch.randn(images.shape, generator=gen)).sum(), ws)
        pulled = pulled.reshape(batch, size).double()
        total += pulled.T @ pulled
    return torch.linalg.eigh(total / (samples // batch * batch))


class WhitenedOffsets:
    """StylePreconditioner's interface (offsets, ws()) over all of W+ at once: ws = start + P v, P
    the eigenvectors of E[J^T J] scaled by (eigenvalue + lam * largest)^-power, so that Adam's
    per-coordinate steps follow the average curvature's axes (power 0: rotated only)."""

    def __init__(self, G, start, curvature, lam: float, power: float):
        values, vectors = curvature
        scale = (values.clamp_min(0) + lam * values[-1]) ** -power
        self.start, self.shape = start.detach(), start.shape
        self.basis = (vectors * (scale / scale.min())).float()      # the stiffest direction keeps unit scale
        self.offsets = [torch.zeros(start.shape[0], self.basis.shape[1], requires_grad=True)]

    def ws(self, offsets=None):
        v = (self.offsets if offsets is None else offsets)[0]
        return self.start + (v @ self.basis.T).view(self.shape)


def variable_projection(G, start, targets, settings, lam: float):
    """The defaults' Adam on every ws layer but the last (no noise maps), and the last solved exactly
    each step: the image is the earlier blocks' (upsampled) plus the last toRGB's, which is linear in
    that layer's style offset d, so min |r(d)|^2 + 3 |highpass r(d)|^2 + lam' |d|^2 is one k x k
    solve per image (k: the last toRGB's feature maps; lam' = lam x the mean diagonal). The gradient
    Adam sees is the one at the solved d. Returns (the best images, their ws)."""
    from trainer.inversion.losses import binomial_blur
    from trainer.inversion.project import StylePreconditioner, learning_rate
    from trainer.models.nvlabs_ops import skip_image
    for p in G.parameters():
        p.requires_grad_(False)
    blocks, n = G.synthesis.blocks, len(targets)
    last = blocks[-1]
    styles = StylePreconditioner(G, start)
    pinv = styles.pinv[-1]                                     # [w_dim, k]
    solved = torch.zeros(n, pinv.shape[1])
    optimizer = torch.optim.Adam(styles.offsets[:-1], lr=settings.lr, betas=(0.9, 0.999))
    best, best_images = torch.full((n,), float("inf")), torch.zeros_like(targets)
    best_ws = start.clone()

    def highpass(r):
        return r - binomial_blur(r)

    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step / settings.steps)
        ws = styles.ws(styles.offsets[:-1] + [solved])
        x, img, index = None, None, 0
        for block in blocks[:-1]:
            x, img = block(x, img, ws[:, index:index + block.num_conv + block.num_torgb])
            index += block.num_conv
        x = last.conv1(last.conv0(x, ws[:, index], "const"), ws[:, index + 1], "const")
        with torch.no_grad():     # the last layer's images are linear in d: one column per style
            features, w_last = x.detach(), ws[:, -1].detach()
            below = skip_image(img.detach(), torch.zeros_like(targets), last.resample_filter)
            drawn = last.torgb(features, w_last)
            columns = [last.torgb(features, w_last + pinv[:, i]) - drawn for i in range(pinv.shape[1])]
            residual = below + drawn - targets
            normal = torch.zeros(n, len(columns), len(columns))
            rhs = torch.zeros(n, len(columns))
            for weight, view in ((1.0, lambda r: r), (3.0, highpass)):
                k = torch.stack([view(c).flatten(1) for c in columns], -1)          # [N, pixels, k]
                normal += weight * k.transpose(1, 2) @ k
                rhs -= weight * (k.transpose(1, 2) @ view(residual).flatten(1)[..., None])[..., 0]
            damping = max(lam, 1e-6) * normal.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * torch.eye(len(columns))
            # toward the start: (K^T K + lam') d_new = K^T K d - K^T r
            solved = torch.linalg.solve(normal + damping, (normal @ solved[..., None])[..., 0] + rhs)
        ws = styles.ws(styles.offsets[:-1] + [solved])
        images = skip_image(img, last.torgb(x, ws[:, -1]), last.resample_filter)
        residual = images - targets
        per_image = residual.square().flatten(1).mean(1) + 3 * highpass(residual).square().flatten(1).mean(1)
        with torch.no_grad():
            better = per_image < best
            best = torch.where(better, per_image, best)
            best_images[better], best_ws[better] = images.detach()[better], ws.detach()[better]
        optimizer.zero_grad()
        per_image.sum().backward()
        optimizer.step()
    return best_images, best_ws


def draw_pure(G, styles, sizes, flat):
    """The images of the style offsets `flat` [N, sum(sizes)], as a pure function for torch.func."""
    return G.synthesis(styles.ws(list(torch.split(flat, sizes, dim=1))), noise_mode="const").float()


if __name__ == "__main__":
    sys.exit(main())
