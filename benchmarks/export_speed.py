"""Timeline export speed: does encoding hide behind rendering?

Renders a 300-frame timeline of the demo model (a looped seed walk, 10 seeds, 30 fps) and prints,
in the same process and on the same thread budget:
- plain batched generation: the timeline's final latents (computed beforehand) synthesized in the
  renderer's batches and converted to uint8 on the host, nothing else: the speed limit;
- export: `export_timeline` writing an MP4 (and a GIF, and an MP4 resized to 256 px), which also
  computes each frame's latents and encodes on a second thread.
The ratio export / plain is the figure (target >= 0.8). Each export runs right after a plain pass,
`--repeats` times; printed are the best speed of each, the ratio of the bests, and the median of
the paired ratios (robust to load that drifts, since other processes share this machine's cores). On a shared machine the
wall-clock ratio swings with the load, so the process CPU time (all threads) of each is printed
too: plain CPU / export CPU is the share of the export's work that is rendering, which the wall
ratio reaches when a spare core takes the encoder thread.
Then playback in the window: the Timeline panel plays the same timeline at 30 and 60 fps target
(offscreen) and the fps it reports is printed beside the renderer's own limit.

  python benchmarks/export_speed.py [--model demo|PATH] [--threads 2] [--repeats 3] [--device cpu]
                                    [--skip-window]
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

import torch

FRAMES = 300


def plain_generation(renderer, ws) -> tuple[float, float]:
    """(wall, CPU) seconds to synthesize the final latents in the renderer's chunk size, to host uint8."""
    from trainer.film.render import CHUNK_FRAMES
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(ws), CHUNK_FRAMES):
        renderer.synthesize(ws[i:i + CHUNK_FRAMES])
    return time.perf_counter() - start, time.process_time() - cpu


def export_once(renderer, path, size=None) -> tuple[float, float]:
    """(wall, CPU) seconds of a whole export: latents, rendering, resizing, encoding, renaming."""
    from trainer.film.video import ExportSettings, export_timeline
    cpu = time.process_time()
    report = export_timeline(renderer, ExportSettings(str(path), size=size, resize_filter="lanczos"))
    assert report.frames == FRAMES
    return report.seconds, time.process_time() - cpu


def window_playback(model: str, line, seconds: float = 4.0) -> list[tuple[float, float, int]]:
    """(target fps, achieved fps, frames skipped) of the Timeline panel playing `line` in the window."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication
    from ganstudio.widgets.main_window import MainWindow
    app = QApplication.instance() or QApplication([])   # noqa: F841 (kept alive while the window runs)
    window = MainWindow(device="cpu")
    window.show()
    window.open_checkpoint(model)

    def spin(ms):
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    while window.info is None or window.is_busy():
        spin(50)
    player = window.timeline_panel.player
    results = []
    for target in (30, 60):
        window.workspace.timeline = line.replace(fps=float(target))
        player.play()
        spin(int(seconds * 1000))
        achieved, skipped = player.achieved_fps, player.frames_skipped
        player.pause()
        results.append((target, achieved, skipped))
        spin(300)
    window.close()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="demo", help="demo (assets/demo) or a checkpoint path")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-window", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ganstudio.engine.demo import find_demo_checkpoint
    from trainer import load_generator
    from trainer.latents import LatentState
    from trainer.film.presets import seed_walk
    from trainer.film.render import TimelineRenderer
    model = str(find_demo_checkpoint()) if args.model == "demo" else args.model
    G = load_generator(model, device=args.device)
    line = seed_walk(range(10), seconds_per_key=1.0, fps=30, base=LatentState(class_index=None), G=G)
    assert line.frame_count == FRAMES
    renderer = TimelineRenderer(G, line)
    ws = renderer.frame_latents(range(FRAMES))
    plain_generation(renderer, ws)                        # warm-up: the first pass of each batch shape
    for chunk in range(renderer.chunk_count):            # costs seconds (kernel set-up), not rendering
        renderer.render_chunk(chunk)
    print(f"model {Path(model).name}: {G.img_resolution}x{G.img_resolution}, {G.num_ws} ws, device {args.device}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores on the machine")
    names = ("plain", "mp4", "gif", "mp4 256px")
    wall = {name: float("inf") for name in names}
    cpu = {name: float("inf") for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names[1:]}   # each export against the plain run just before
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"plain": lambda: plain_generation(renderer, ws),
                "mp4": lambda: export_once(renderer, Path(tmp) / "a.mp4"),
                "gif": lambda: export_once(renderer, Path(tmp) / "a.gif"),
                "mp4 256px": lambda: export_once(renderer, Path(tmp) / "b.mp4", 256)}
        for _ in range(args.repeats):
            for name in names:
                if name != "plain":
                    plain_seconds, _ = runs["plain"]()
                    wall["plain"] = min(wall["plain"], plain_seconds)
                seconds, cpu_seconds = runs[name]()
                wall[name], cpu[name] = min(wall[name], seconds), min(cpu[name], cpu_seconds)
                if name != "plain":
                    ratios[name].append(plain_seconds / seconds)
    plain_fps = FRAMES / wall["plain"]
    print(f"{FRAMES} frames, best of {args.repeats} (load average at the end: {os.getloadavg()[0]:.1f}):")
    print(f"  plain batched generation   {plain_fps:7.1f} frames/s   CPU {cpu['plain']:5.1f} s")
    for name in names[1:]:
        fps = FRAMES / wall[name]
        print(f"  export {name:<19s} {fps:7.1f} frames/s   CPU {cpu[name]:5.1f} s   ratio of the best "
              f"{fps / plain_fps:.2f}, median of paired runs {statistics.median(ratios[name]):.2f} "
              f"(CPU ratio {cpu['plain'] / cpu[name]:.2f})")
    if not args.skip_window:
        for target, achieved, skipped in window_playback(model, line):
            print(f"  window playback, target {target} fps: {achieved:.1f} fps shown, {skipped} frames skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
