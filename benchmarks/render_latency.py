"""Render latency in the studio: time from a control change (the ψ slider) to the new image on
screen, and renders per second, measured through the real window (offscreen) and its worker.

For each model: what opening it costs (image renders asked for, time from open to the first image
and to the final one, time until directions are ready) the way the studio used to open models (a
render per changed workspace field, directions always recomputed) beside the way it does now (one
render after the workspace is set; directions from the per-checkpoint cache on a reopen); then the
median and 95th percentile of change-to-screen latency when changes come one at a time, the frames per second reached while a slider is dragged without pause (newest
request wins), and, as a baseline in the same process, the renderer alone (no Qt, no thread):
its median render time and renders per second. The ratio says what the window costs.

Then the live loop itself (engine.frame_timing): frames per second of the renderer drawing a new
latent each frame, the median ms of each stage (request, mapping, synthesis, copy; paint is the
window's, above), and the synthesis' achieved GFLOP/s with its fraction of this CPU's peak (a plain
matmul and convolution measured in the same run, benchmarks/_common.py). On the CPU: the demo and
the 256 px model, fp32 and bf16 (where the CPU has it). Where CUDA exists, GPU rows too: NVlabs-exact
StyleGAN2 (config-f widths, random weights) at 512 and 1024 px, fp32 and fp16, CUDA graphs off and
on (goal on an H100-class GPU: >= 120 fps at 512 px, >= 60 at 1024 px). With NVlabs' code (--nvlabs
DIR or $NVLABS_STYLEGAN3), the CPU rows add the NVlabs-exact StyleGAN2 at 256 px with paper256
widths and NVlabs' own synthesis of the same weights (its reference ops), timed before and after
ours in the same process: the synthesis column over NVlabs' (issue 28's goal: at most 0.5x).

  python benchmarks/render_latency.py [--model demo|PATH] [--changes 200] [--device auto] [--half]
                                      [--threads 0] [--skip-256] [--skip-window] [--loop-frames 20]
                                      [--nvlabs DIR]

Models: the bundled demo (assets/demo; or --model PATH), and a 256x256 stylegan2 built from the
registry with random weights and exported to a temporary directory (weights do not change speed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_peak, flops, load_average, machine_peak, of_peak, without_grad  # noqa: E402

DRAG_HZ = 120  # slider values per second while "dragging" (a fast mouse sends about this many)


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def make_256_model(directory: Path, resolution: int = 256, arch: str = "stylegan2-compact",
                   channel_base: int = 32768) -> Path:
    """Random weights exported as a checkpoint: the compact StyleGAN2, or NVlabs-exact ("stylegan2",
    config-f widths; channel_base 16384: paper256's)."""
    from trainer.checkpoint import export_generator
    from trainer.config import ModelConfig
    from trainer.models import build_generator, generator_config
    cfg = ModelConfig(arch=arch, z_dim=512, w_dim=512, c_dim=0, img_resolution=resolution, img_channels=3,
                      width=64, max_width=512, mapping_layers=8, channel_base=channel_base, channel_max=512)
    torch.manual_seed(0)
    G = build_generator(cfg)
    path = directory / f"random-{arch}-{resolution}-{channel_base}.safetensors"
    # the arch's own config, as the trainer exports it (a ModelConfig with `width` reads as the compact model)
    export_generator(G, path, generator_config(cfg), 0, 0.0, {"name": "random weights", "resolution": resolution,
                                                              "channels": 3, "class_names": [], "size": 0})
    return path


def renderer_baseline(path, device, half, count):
    """The renderer alone on this thread: median ms per image and images per second."""
    from ganstudio.engine.renderer import Renderer, RenderRequest
    from trainer.latents import LatentState
    renderer = Renderer(device, half)
    info = renderer.load(path)
    times = []
    start = time.perf_counter()
    for i in range(count):
        req = RenderRequest(i + 1, renderer.generation, LatentState(seed=0, class_index=0 if info.c_dim else None,
                                                                    psi=0.5 + (i % 50) / 100))
        result = renderer.render(req)
        assert not result.error, result.error
        times.append(result.milliseconds)
    return statistics.median(times), count / (time.perf_counter() - start), info


LOOP_WARMUP = 4   # frames before the loop is timed: allocations, kernel choice, the CUDA graph's capture


def loop_row(path, device: str, precision: str = "fp32", graphs: bool = False, frames: int = 20) -> dict:
    """The renderer's live loop on one model: a new latent each frame -> frames per second, the
    median ms of each stage and the synthesis' GFLOP/s. precision: fp32, bf16 (CPU) or fp16 (CUDA)."""
    from ganstudio.engine.frame_timing import STAGES
    from ganstudio.engine.render_settings import RenderSettings
    from ganstudio.engine.renderer import Renderer, RenderRequest
    from trainer.latents import LatentState
    renderer = Renderer(device)
    info = renderer.load(path)
    renderer.tuning.settings = RenderSettings(bf16=precision == "bf16", fp16=precision == "fp16", measured=True)
    if not graphs:
        renderer.graphs = None
    timings, start = [], 0.0
    for i in range(LOOP_WARMUP + frames):
        if i == LOOP_WARMUP:
            start = time.perf_counter()
        result = renderer.render(RenderRequest(i + 1, renderer.generation, LatentState(seed=i % 7, psi=0.5 + i % 5 / 10)))
        assert not result.error, result.error
        timings.append(result.timing)
    fps = frames / (time.perf_counter() - start)
    stages = {name: statistics.median(getattr(t, name) for t in timings[LOOP_WARMUP:]) for name in STAGES[:4]}
    with torch.inference_mode():
        ws = renderer.mapper.ws([LatentState(seed=0)])
    count = flops(lambda: without_grad(renderer.G).synthesis(ws, noise_mode="const"))
    return {"size": info.img_resolution, "device": device, "precision": precision,
            "graphs": renderer.graphs is not None, "fps": fps, **stages,
            "gflops": count / stages["synthesis"] / 1e6 if stages["synthesis"] else 0.0}


def nvlabs_synthesis_ms(nv, path, frames: int) -> float:
    """NVlabs' own synthesis (reference ops, fp32) of the checkpoint's weights, after checking it draws
    our images: median ms per frame, batch 1, a new latent each frame, as the live loop."""
    import nvlabs_reference
    from trainer.checkpoint import load_generator
    ours = load_generator(path)
    theirs = nvlabs_reference.generator(nv, ours).eval()
    nvlabs_reference.check_generators(ours, theirs)
    times = []
    with torch.inference_mode():
        for i in range(LOOP_WARMUP + frames):
            ws = theirs.mapping(torch.randn(1, ours.z_dim, generator=torch.Generator().manual_seed(i)), None)
            start = time.perf_counter()
            theirs.synthesis(ws, noise_mode="const")
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[LOOP_WARMUP:])


def loop_table(rows, peak: dict | None = None) -> list[str]:
    """The live loop's rows as text; the fraction of peak where the CPU's was measured."""
    lines = [f"{'model':14s} {'device':6s} {'size':>5s} {'precision':9s} {'graphs':6s} {'fps':>7s} {'request':>8s} "
             f"{'mapping':>8s} {'synthesis':>9s} {'copy':>6s} {'GFLOP/s':>8s} {'of peak':>7s} {'/ NVlabs':>8s}"
             f"   (stage ms: median per frame)"]
    for r in rows:
        fraction = f"{of_peak(r['gflops'], peak, 'bf16' if r['precision'] == 'bf16' else 'fp32'):7.0%}" \
            if peak and r["device"] == "cpu" else f"{'-':>7s}"
        versus = f"{r['synthesis'] / r['nvlabs_ms']:8.2f}" if r.get("nvlabs_ms") else f"{'-':>8s}"
        lines.append(f"{r.get('label', '')[:14]:14s} {r['device']:6s} {r['size']:5d} {r['precision']:9s} "
                     f"{'on' if r['graphs'] else 'off':6s} {r['fps']:7.1f} {r['request']:8.2f} {r['mapping']:8.2f} "
                     f"{r['synthesis']:9.2f} {r['copy']:6.2f} {r['gflops']:8.1f} {fraction} {versus}")
    for r in rows:
        if r.get("nvlabs_ms"):
            lines.append(f"NVlabs' synthesis, {r['label']}: {r['nvlabs_ms']:.1f} ms (median of its two timings, "
                         f"{r['nvlabs_times'][0]:.1f} before ours and {r['nvlabs_times'][1]:.1f} after)")
            break
    return lines


def loop_rows(models, tmp: Path, frames: int, nv=None) -> list[dict]:
    """CPU rows for `models` ((label, path)), and with NVlabs' code (`nv`) the exact 256 px paper256
    model beside NVlabs' synthesis; GPU rows at 512 and 1024 px wherever CUDA exists."""
    from ganstudio.engine.render_settings import native_bf16
    precisions = ("fp32", "bf16")[:1 + native_bf16()]
    rows = [{**loop_row(path, "cpu", precision, False, frames), "label": label}
            for label, path in models for precision in precisions]
    if nv is not None:
        exact = make_256_model(tmp, 256, "stylegan2", channel_base=16384)
        before = nvlabs_synthesis_ms(nv, exact, frames)
        ours = [{**loop_row(exact, "cpu", precision, False, frames), "label": "exact paper256"} for precision in precisions]
        after = nvlabs_synthesis_ms(nv, exact, frames)
        rows += [{**r, "nvlabs_ms": (before + after) / 2, "nvlabs_times": (before, after)} for r in ours]
    if torch.cuda.is_available():
        for size in (512, 1024):
            path = make_256_model(tmp, size, "stylegan2")
            rows += [loop_row(path, "cuda", precision, graphs, 5 * frames)
                     for precision in ("fp32", "fp16") for graphs in (False, True)]
    return rows


def open_cost(path, device, half, render_per_field: bool, cache_dir: str) -> dict:
    """Open a model through the Qt-free controller, inline: renders asked for, ms from open to the
    first and the final image, ms until directions are ready (the controller computes them at open)."""
    from ganstudio.engine.controller import RenderController
    from ganstudio.engine.renderer import Renderer
    from ganstudio.engine.workspace import Workspace
    os.environ["GANSTUDIO_CACHE"] = cache_dir
    controller = RenderController.inline(Workspace(), Renderer(device, half), render_per_field=render_per_field)
    shown = []
    controller.events.image.connect(lambda result: shown.append(time.perf_counter()))
    t0 = time.perf_counter()
    controller.open(path)
    done = time.perf_counter()
    return {"renders": controller.renders_requested, "first": (shown[0] - t0) * 1000,
            "final": (shown[-1] - t0) * 1000, "directions": (done - t0) * 1000}


def report_open_costs(path, device, half) -> None:
    cold, warm = tempfile.mkdtemp(prefix="cache-cold-"), tempfile.mkdtemp(prefix="cache-warm-")
    open_cost(path, device, half, False, warm)   # fills the warm cache (and warms torch up)
    rows = [("before: a render per field, directions computed", open_cost(path, device, half, True, cold)),
            ("now: one render, directions computed (first open)",
             open_cost(path, device, half, False, tempfile.mkdtemp(prefix="cache-cold-"))),
            ("now: one render, directions cached (reopen)", open_cost(path, device, half, False, warm))]
    print(f"  {'opening the model':<52} {'renders':>7} {'first image':>12} {'final image':>12} {'directions':>11}")
    for label, r in rows:
        print(f"  {label:<52} {r['renders']:>7} {r['first']:>9.0f} ms {r['final']:>9.0f} ms {r['directions']:>8.0f} ms")
    before, now = rows[0][1], rows[2][1]
    print(f"  reopen vs before: {before['renders'] / now['renders']:.1f}x fewer renders, directions ready "
          f"{before['directions'] / now['directions']:.1f}x sooner")


def window_latency(app, path, device, half, changes, flood_seconds):
    from ganstudio.widgets.main_window import MainWindow
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(device=device, half=half, settings=settings)
    window.resize(1180, 760)
    window.show()
    window.open_checkpoint(path)
    while window.last_result is None or window.is_busy():   # loading, first render, directions
        app.processEvents()
        time.sleep(0.005)
    shown_at = {}
    waiting = QEventLoop()

    def on_shown(result):
        window.image_view.viewport().repaint()   # paint now, so "on screen" includes drawing
        shown_at[result.request_id] = time.perf_counter()
        if waiting.isRunning() and result.request_id == window.controller.requested_id:
            waiting.quit()

    window.frame_shown.connect(on_shown)
    slider = window.truncation_panel.psi_slider
    latencies = []
    for i in range(changes):
        t0 = time.perf_counter()
        slider.setValue(20 + (i * 7) % 150)           # psi 0.2 .. 1.7, a new value every time
        wanted = window.controller.requested_id
        if wanted not in shown_at:
            waiting.exec()                             # sleeps in Qt's event loop until it is shown
        latencies.append((shown_at[wanted] - t0) * 1000)
    # dragging: a new slider value at DRAG_HZ, like mouse-move events, for flood_seconds
    frames_before = len(shown_at)
    sent = [0]
    drag = QTimer()
    drag.setInterval(round(1000 / DRAG_HZ))

    def move():
        sent[0] += 1
        slider.setValue(20 + (sent[0] * 7) % 150)

    drag.timeout.connect(move)
    stop = QEventLoop()
    t0 = time.perf_counter()
    drag.start()
    QTimer.singleShot(round(flood_seconds * 1000), stop.quit)
    stop.exec()
    drag.stop()
    elapsed = time.perf_counter() - t0
    fps = (len(shown_at) - frames_before) / elapsed
    i = sent[0]
    while not window.worker.is_idle():
        app.processEvents()
        time.sleep(0.005)
    window.close()
    return latencies, fps, i / elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo", help="'demo' or a checkpoint / run directory")
    p.add_argument("--changes", type=int, default=200, help="control changes timed one by one (demo model)")
    p.add_argument("--changes-256", type=int, default=12, help="control changes for the 256x256 model")
    p.add_argument("--flood-seconds", type=float, default=3.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--half", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--skip-256", action="store_true")
    p.add_argument("--skip-window", action="store_true", help="only the live loop's rows (no window, no opening)")
    p.add_argument("--loop-frames", type=int, default=20, help="timed frames per live-loop row (GPU rows: 5x)")
    p.add_argument("--nvlabs", default=None, help="NVlabs stylegan3 checkout for the exact 256 px rows against "
                                                 "NVlabs' synthesis (default: $NVLABS_STYLEGAN3; none: no such rows)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from PySide6.QtWidgets import QApplication
    from ganstudio.engine.demo import find_demo_checkpoint, missing_demo_message
    from trainer.device import pick_device
    app = QApplication.instance() or QApplication(sys.argv[:1])
    device = pick_device(args.device)
    name = "cuda " + torch.cuda.get_device_name() if device == "cuda" else device
    from PySide6 import __version__ as pyside_version
    print(f"PySide6 {pyside_version}, torch {torch.__version__}, device {name}, {torch.get_num_threads()} CPU threads, "
          f"half={args.half and device != 'cpu'}, Qt platform {os.environ['QT_QPA_PLATFORM']}")
    models = []
    if args.model == "demo":
        demo = find_demo_checkpoint()
        if demo is None:
            sys.exit(missing_demo_message())
        models.append(("demo", demo, args.changes))
    else:
        models.append((Path(args.model).name, Path(args.model), args.changes))
    tmp = Path(tempfile.mkdtemp(prefix="render-latency-"))
    if not args.skip_256:
        models.append(("random 256x256", make_256_model(tmp), args.changes_256))
    peak = machine_peak()
    print(f"CPU peak GFLOP/s in this run: {describe_peak(peak)}; load average {load_average()}")
    print("the live loop (renderer alone, a new latent each frame):")
    from _common import nvlabs
    nv = nvlabs(args.nvlabs, print)
    print("\n".join(loop_table(loop_rows([(label, path) for label, path, _ in models], tmp, args.loop_frames, nv), peak)))
    print(f"load average after the loop rows {load_average()}")
    if args.skip_window:
        return
    for label, path, changes in models:
        print(f"{label}:")
        report_open_costs(path, device, args.half)
    print(f"{'model':<16} {'size':>9} {'change->screen median':>22} {'p95':>9} {'drag fps':>9} "
          f"{'renderer ms':>12} {'renderer/s':>11} {'window/renderer':>16}")
    for label, path, changes in models:
        base_ms, base_rate, info = renderer_baseline(path, device, args.half, max(changes // 2, 5))
        latencies, fps, change_rate = window_latency(app, path, device, args.half, changes, args.flood_seconds)
        size = f"{info.img_resolution}x{info.img_resolution}"
        print(f"{label[:16]:<16} {size:>9} {statistics.median(latencies):>19.1f} ms {percentile(latencies, 95):>6.1f} ms "
              f"{fps:>9.1f} {base_ms:>9.1f} ms {base_rate:>11.1f} {fps / base_rate:>15.2f}x")
        print(f"{'':<16} ({changes} timed changes; drag sent {change_rate:.0f} slider values/s)")


if __name__ == "__main__":
    main()
