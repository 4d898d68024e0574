"""Live control: how long an OSC message takes to reach the screen, against the studio's own ψ slider
in the same run, and the OSC rate the studio absorbs with no backlog.

  OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen python benchmarks/live_control.py [--checkpoint X] [--rounds 40]

Latency: from the moment the slider is set (or the python-osc client sends /ganstudio/psi) to the
window's frame_shown for a render asked after it; slider and OSC rounds alternate. Rate: a client
thread sends /ganstudio/psi at a fixed rate for --seconds; "no backlog" means every message arrived
and the last one was applied within 50 ms of being sent.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: the bundled demo model, else a tiny StyleGAN2")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seconds", type=float, default=2.0, help="per rate")
    p.add_argument("--rates", default="500,2000,8000,20000", help="messages per second to try")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "live_control.txt"))
    args = p.parse_args()
    import torch
    torch.set_num_threads(1)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication
    from pythonosc.udp_client import SimpleUDPClient
    from ganstudio.engine.demo import find_demo_checkpoint
    from ganstudio.widgets.main_window import MainWindow
    app = QApplication.instance() or QApplication([])
    checkpoint = args.checkpoint or find_demo_checkpoint()
    if checkpoint is None:
        from conftest import export_tiny
        checkpoint = export_tiny(Path("/tmp/live_control_tiny.safetensors"), c_dim=0)
    window = MainWindow(device="cpu", settings=QSettings("/tmp/live_control.ini", QSettings.Format.IniFormat))
    window.show()
    window.open_checkpoint(checkpoint)
    controller, live = window.controller, window.live_control.live

    def spin_until(done, timeout=60.0):
        end = time.perf_counter() + timeout
        while not done():
            if time.perf_counter() > end:
                raise TimeoutError("the studio did not answer")
            app.processEvents()
            time.sleep(0.0005)

    spin_until(lambda: controller.last_result is not None and not window.is_busy())
    client = SimpleUDPClient("127.0.0.1", window.live_control.listen(0))
    shown = []
    window.frame_shown.connect(lambda r: shown.append((time.perf_counter(), r.request_id)))

    def until_shown(start: float, after_id: int) -> float:
        spin_until(lambda: any(i > after_id for _, i in shown))
        return (next(t for t, i in shown if i > after_id) - start) * 1000

    slider, osc = [], []
    steps = window.truncation_panel.psi_slider
    for k in range(args.rounds):
        psi = 0.3 + 0.6 * ((k * 7) % args.rounds) / args.rounds
        spin_until(lambda: controller.is_current())
        shown.clear()
        before, start = controller.requested_id, time.perf_counter()
        steps.setValue(round(psi * 100) + (1 if k % 2 else 0))   # ticks of 0.01; a value that differs
        slider.append(until_shown(start, before))
        spin_until(lambda: controller.is_current())
        shown.clear()
        before, start = controller.requested_id, time.perf_counter()
        client.send_message("/ganstudio/psi", psi + 0.005)
        osc.append(until_shown(start, before))

    rates = []
    for rate in (int(r) for r in args.rates.split(",")):
        spin_until(lambda: controller.is_current())
        received0, count = live.received, int(rate * args.seconds)
        sent_last = [0.0]

        def flood():
            start = time.perf_counter()
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                client.send_message("/ganstudio/psi", 0.2 + 0.6 * i / count)
            sent_last[0] = time.perf_counter()

        sender = threading.Thread(target=flood)
        sender.start()
        spin_until(lambda: not sender.is_alive(), timeout=args.seconds * 20 + 30)
        try:
            spin_until(lambda: live.received - received0 >= count, timeout=2.0)
            lag = (time.perf_counter() - sent_last[0]) * 1000
        except TimeoutError:
            lag = float("inf")
        rates.append((rate, live.received - received0, count, lag))
    window.close()

    def stats(values):
        return f"median {np.median(values):7.1f} ms   p95 {np.percentile(values, 95):7.1f} ms"

    lines = [f"# OMP_NUM_THREADS=1 python benchmarks/live_control.py --rounds {args.rounds} --seconds {args.seconds:g}",
             f"# {Path(checkpoint).name} on cpu, 1 torch thread; {controller.info.img_resolution} px; "
             f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
             f"psi slider -> pixels on screen   {stats(slider)}   (the baseline, same run)",
             f"OSC /ganstudio/psi -> pixels     {stats(osc)}   (x{np.median(osc) / np.median(slider):.2f} the slider)",
             "OSC rate        received   lag after last send (no backlog: all received, lag < 50 ms)"]
    absorbed = 0
    for rate, got, count, lag in rates:
        ok = got == count and lag < 50
        absorbed = max(absorbed, rate if ok else 0)
        lines.append(f"  {rate:6d}/s   {got:6d}/{count:<6d}   {lag:7.1f} ms  {'ok' if ok else 'BACKLOG or loss'}")
    lines.append(f"absorbed with no backlog: {absorbed} messages/s (the fastest rate tried that passed; the "
                 f"sending thread shares this process's GIL, so a separate program does at least as well)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
