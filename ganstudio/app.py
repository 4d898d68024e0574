"""Placeholder window until the studio lands: opens a checkpoint (file or run directory) and
shows a grid of samples from it. `ganstudio PATH [--screenshot out.png]`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ganstudio", description="GAN Studio (early placeholder window)")
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint or a run directory")
    p.add_argument("--screenshot", metavar="PNG", help="save the window after the first render and exit")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QImage, QPixmap
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox

    from trainer import CheckpointError, load_generator
    from trainer.images import make_grid, scatter_image, to_uint8

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    window.setWindowTitle("GAN Studio")
    label = QLabel("No checkpoint open.\nRun: ganstudio PATH (a .safetensors checkpoint or a run directory).")
    label.setMinimumSize(420, 420)
    window.setCentralWidget(label)
    if args.checkpoint:
        try:
            G = load_generator(args.checkpoint)
            z = torch.from_numpy(np.random.RandomState(0).randn(36, G.z_dim)).float()
            c = torch.arange(36) % G.c_dim if G.c_dim else None
            with torch.inference_mode():
                out = G(z, c)
            grid = scatter_image(out.numpy()) if G.img_resolution == 0 else make_grid(to_uint8(out), 6)
            grid = np.ascontiguousarray(grid)
            image = QImage(grid.data, grid.shape[1], grid.shape[0], grid.strides[0], QImage.Format_RGB888).copy()
            label.setPixmap(QPixmap.fromImage(image).scaled(420, 420))
            window.setWindowTitle(f"GAN Studio - {G.checkpoint_info['path']}")
        except CheckpointError as exc:
            if args.screenshot:
                label.setText(f"Could not open checkpoint:\n{exc}")
            else:
                QMessageBox.critical(window, "Cannot open checkpoint", str(exc))
    window.show()
    if args.screenshot:
        def grab():
            window.grab().save(args.screenshot)
            app.quit()
        QTimer.singleShot(200, grab)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
