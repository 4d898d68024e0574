"""Screenshots of the Invert panel on a real photo outside the demo's domain (scikit-image's
`coffee`, a cup on a saucer, made grey and 32x32 by the panel): one during the run, one after a
psi edit of the result (the Truncation panel showing the psi). Drives the real window, offscreen, on the bundled demo.

    QT_QPA_PLATFORM=offscreen python scripts/invert_screenshots.py [--steps 100] [--psi 0.4]

The panel's own defaults otherwise (W+ and noise maps, the encoder's start).
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
PHOTO = ROOT / "assets" / "photos" / "coffee.jpg"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="the panel's default")
    p.add_argument("--psi", type=float, default=0.4)
    p.add_argument("--capture-step", type=int, default=40, help="take the 'during' picture after this step")
    args = p.parse_args()
    import numpy as np
    import torch
    from PIL import Image
    from PySide6.QtWidgets import QApplication
    from ganstudio.engine.demo import find_demo_checkpoint
    from ganstudio.widgets.main_window import MainWindow

    torch.set_num_threads(1)
    if not PHOTO.is_file():
        from skimage import data
        PHOTO.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.coffee()).save(PHOTO, quality=92)
    app = QApplication.instance() or QApplication([])
    window = MainWindow(device="cpu")
    window.resize(1180, 760)   # the studio's default size
    window.show()

    def wait(condition, timeout=600):
        started = time.monotonic()
        while not condition():
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() - started > timeout:
                raise TimeoutError("the window did not get there in time")

    def idle():
        return window.info is not None and window.last_result is not None \
            and window.controller.shown_id == window.controller.requested_id and not window.is_busy()

    window.open_checkpoint(find_demo_checkpoint())
    wait(idle)
    panel = window.invert_panel
    assert window.open_photo(PHOTO), panel.last_error
    panel.steps.setValue(args.steps)
    previews = []
    panel.preview_shown.connect(previews.append)
    panel.run()
    wait(lambda: previews and previews[-1].step >= args.capture_step)
    for _ in range(20):
        app.processEvents()
    window.grab().save(str(OUT / "invert-running.png"))
    wait(lambda: not panel.is_running())
    wait(idle)
    outcome = panel.outcome
    reconstruction = window.image_view.image.copy()
    window.truncation_panel.psi_box.setValue(args.psi)
    wait(idle)
    window.panels.setCurrentWidget(window.truncation_panel)   # the edit's control, with its value
    for _ in range(20):
        app.processEvents()
    window.grab().save(str(OUT / "invert-edited.png"))
    edited = window.image_view.image.copy()
    print(f"inverted {PHOTO.name}: PSNR {outcome.psnr:.2f} dB, SSIM {outcome.ssim:.3f} after {outcome.steps_done} "
          f"steps (class {outcome.class_index}); psi {args.psi} edit changed "
          f"{float(np.mean(np.abs(edited.astype(int) - reconstruction.astype(int)))):.1f} grey levels on average")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
