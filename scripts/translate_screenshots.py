"""Screenshots of the Translate panel from the real window, offscreen: a Pix2Pix checkpoint on a
held-out edge drawing, and a CycleGAN checkpoint (boots -> sneakers, with the round trip).
The checkpoints are the runs `benchmarks/img2img.py` trains (or any image-to-image runs).

    QT_QPA_PLATFORM=offscreen python scripts/translate_screenshots.py PIX2PIX_RUN CYCLEGAN_RUN [--pick 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "assets" / "readme"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pix2pix", help="a Pix2Pix run directory or checkpoint")
    p.add_argument("cyclegan", nargs="?", default=None, help="a CycleGAN run directory or checkpoint")
    p.add_argument("--pick", type=int, default=3, help="the held-out input shown (1-based)")
    args = p.parse_args()
    import torch
    from PySide6.QtWidgets import QApplication
    from ganstudio.widgets.main_window import MainWindow

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    window = MainWindow(device="cpu")
    window.resize(1180, 760)   # the studio's default size
    window.show()
    panel = window.translate_panel

    def wait(condition, timeout=300):
        started = time.monotonic()
        while not condition():
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() - started > timeout:
                raise TimeoutError("the window did not get there in time")

    def shows(name: str):
        return lambda: (panel.view is not None and panel.picture_name == name and not window.is_busy())

    for run, name, direction in ((args.pix2pix, "translate-pix2pix.png", 0), (args.cyclegan, "translate-cyclegan.png", 1)):
        if run is None:
            continue
        window.open_checkpoint(run)
        wait(shows("held-out input 1"))
        if direction:
            panel.direction.setCurrentIndex(direction)
            wait(lambda: panel.view is not None and panel.view.direction == "BtoA" and not window.is_busy())
        panel.set_pixels(panel.held_out.images[args.pick - 1], f"held-out input {args.pick}")
        wait(shows(f"held-out input {args.pick}"))
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        window.grab().save(str(OUT / f"studio-{name}"))
        print(f"wrote {OUT / f'studio-{name}'}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
