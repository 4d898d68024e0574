"""`ganstudio [PATH]`: open the studio on a checkpoint, a run directory, a workspace .json, or
(with no PATH) the bundled demo model.

  ganstudio runs/00000-stylegan2-cond-fashion-mnist --watch   reload as training writes snapshots
  ganstudio --screenshot out.png --panel mixing                 save the window after the first render
  ganstudio --monitor runs/RUN_A --monitor runs/RUN_B           plot runs live in the Monitor tab
"""
from __future__ import annotations

import argparse
import os
import sys

from .widgets.main_window import PANELS

SCREENSHOT_TIMEOUT_S = 180
MAX_THREADS = 1024
NO_SCREEN = ("ganstudio: no screen here (DISPLAY and WAYLAND_DISPLAY are unset): run it under a virtual one "
             "(xvfb-run -a ganstudio ...) or save a picture with --screenshot out.png")


def window_size(text: str) -> tuple[int, int]:
    """"1180x760" -> (1180, 760); argparse turns the ValueError into a usage message."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use WIDTHxHEIGHT, e.g. 1180x760") from None
    if not sep or not all(200 <= n <= 16384 for n in size):
        raise argparse.ArgumentTypeError(f"{text!r}: use WIDTHxHEIGHT with each side from 200 to 16384 pixels")
    return size


def thread_count(text: str) -> int:
    """--threads: 0 (torch's default) up to MAX_THREADS; anything else is a usage message."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{value}: use 0 (torch's default) to {MAX_THREADS}")
    return value


def choose_platform(screenshot: bool, environ=os.environ) -> str | None:
    """Pick Qt's platform before the QApplication exists: the user's QT_QPA_PLATFORM wins; a
    screenshot, or a Linux machine with no display, needs no screen (offscreen). Returns NO_SCREEN
    when the window has nowhere to go, else None."""
    if environ.get("QT_QPA_PLATFORM"):
        return None
    screen = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY") or not sys.platform.startswith("linux")
    if screenshot:
        environ["QT_QPA_PLATFORM"] = "offscreen"   # Qt's xcb would abort (exit 134) without a display
        return None
    return None if screen else NO_SCREEN


def build_parser() -> argparse.ArgumentParser:
    """The CLI; other parts of the studio add their own options here."""
    p = argparse.ArgumentParser(prog="ganstudio", description="GAN Studio: explore a GAN's latent space live.")
    p.add_argument("path", nargs="?", help="a .safetensors checkpoint, a run directory, or a workspace .json "
                                           "(default: the bundled demo model)")
    p.add_argument("--device", default="auto", help="render device: auto (cuda, then mps, then cpu), cuda, mps, cpu")
    p.add_argument("--half", action="store_true", help="half-precision synthesis on a GPU")
    p.add_argument("--watch", action="store_true", help="reload when the run directory gets a newer checkpoint")
    p.add_argument("--panel", choices=PANELS, default="latent", help="the panel shown at start")
    p.add_argument("--screenshot", metavar="PNG", help="save the window after the first render, then exit")
    p.add_argument("--size", default=(1180, 760), type=window_size, help="window size WIDTHxHEIGHT (default 1180x760)")
    p.add_argument("--threads", type=thread_count, default=0,
                   help=f"CPU threads for torch, 0 to {MAX_THREADS} (0: automatic, 1 on 2 cores, else half the free cores)")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add GAN Studio to the Linux application menu (~/.local/share), then exit")
    p.add_argument("--monitor", metavar="RUN", action="append", default=[],
                   help="watch a run directory in the Monitor tab, which the window then shows "
                        "(repeatable: runs are overlaid); with --screenshot, the Monitor tab is saved "
                        "once every run's log has been read")
    p.add_argument("--osc-port", type=osc_port, default=None, metavar="PORT",
                   help="listen for OSC on this UDP port (0: any free one, printed); docs/live.md lists the addresses")
    p.add_argument("--osc-host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1; 0.0.0.0: every network interface)")
    p.add_argument("--osc-send", metavar="HOST:PORT", type=osc_target, default=None,
                   help="send /ganstudio/frame and /ganstudio/loop_end to HOST:PORT")
    return p


def osc_port(text: str) -> int:
    """--osc-port: 0 to 65535; anything else is a usage message."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: use a UDP port from 0 (any free one) to 65535")
    return int(text)


def osc_target(text: str) -> tuple[str, int]:
    from .engine.osc_server import parse_host_port
    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pathlib import Path
    missing = [run for run in args.monitor if not Path(run).is_dir()]
    if missing:   # before any window or thread exists, so nothing has to be torn down
        parser.exit(2, f"ganstudio: --monitor {missing[0]}: not a run directory (no such folder)\n")
    if args.install_desktop_entry:
        from .widgets.look import install_desktop_entry
        for path in install_desktop_entry():
            print(f"wrote {path}")
        return 0
    problem = choose_platform(bool(args.screenshot))
    if problem:
        parser.exit(2, problem + "\n")
    from PySide6.QtWidgets import QApplication
    from .widgets.look import app_icon, style_sheet
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GAN Studio")
    app.setDesktopFileName("ganstudio")   # matches resources/ganstudio.desktop, so menus show the icon
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    from .widgets.qt_check import binding_refcount_problem
    problem = binding_refcount_problem()
    if problem:
        print(f"ganstudio: warning: {problem}", file=sys.stderr)
    import torch
    from trainer.device import choose_threads
    torch.set_num_threads(choose_threads(args.threads, "render")[0])   # 0: the measured default
    from ganstudio.engine import render_settings
    render_settings.FIXED_THREADS = args.threads != 0   # the probe keeps a count the user chose
    window = create_window(args)
    window.show()
    if args.screenshot:
        save_screenshot_when_ready(window, args.screenshot, app)
    return app.exec()


def _say_not_translating(window) -> None:
    text = ("--panel translate: this model draws from latents; the Translate panel opens with Pix2Pix and "
            "CycleGAN checkpoints")
    print(f"ganstudio: {text}", file=sys.stderr)
    window.show_message(text, 10000)


def create_window(args: argparse.Namespace):
    from trainer.device import pick_device
    from .widgets.main_window import MainWindow
    try:
        pick_device(args.device)
    except ValueError as exc:
        sys.exit(f"ganstudio: {exc}")
    window = MainWindow(device=args.device, half=args.half, watch=args.watch)
    window.resize(*args.size)
    window.panels.setCurrentIndex(PANELS.index(args.panel))
    if args.panel == "translate":   # the tab exists only while an image-to-image model is open
        def first_model(info):      # --panel speaks of the model opened at start-up, not of later ones
            window.controller.events.model.disconnect(first_model)
            if not info.translates:
                _say_not_translating(window)
        window.controller.events.model.connect(first_model)
    for run in args.monitor:
        try:
            window.monitor.add_run(run)
        except OSError as exc:
            window.close()   # stops the worker thread first: exiting with it running aborts Qt
            sys.exit(f"ganstudio: --monitor: {exc}")
    if args.monitor:
        window.tabs.setCurrentWidget(window.monitor)
    if args.osc_port is not None:
        try:
            port = window.live_control.listen(args.osc_port, args.osc_host)
        except OSError as exc:
            window.close()
            sys.exit(f"ganstudio: --osc-port {args.osc_port}: {exc}")
        print(f"ganstudio: listening for OSC on {args.osc_host}:{port}", flush=True)
    if args.osc_send is not None:
        window.live_control.send_to(*args.osc_send)
    if args.path:
        window.open_checkpoint(args.path)
    else:
        window.open_demo()
    return window


def save_screenshot_when_ready(window, path: str, app) -> None:
    """Grab the window once the model is open, the first image is shown and the worker is idle
    (so the grid and directions are in too), then quit; exit status 1 if that never happened."""
    import time
    from PySide6.QtCore import QTimer
    started = time.monotonic()
    timer = QTimer(window)

    def check():
        monitor_busy = window.monitor.is_loading()   # runs opened with --monitor still being read
        # an image-to-image model is ready once its jobs are done, with or without held-out inputs to show
        shown = window.last_result is not None or (window.info is not None and window.info.translates)
        ready = shown and not window.is_busy() and not monitor_busy
        failed = window.error_box is not None or time.monotonic() - started > SCREENSHOT_TIMEOUT_S
        no_model = (window.info is None and not window.is_busy() and window.placeholder.isVisible()
                    and not monitor_busy)
        if ready or failed or no_model:
            timer.stop()
            QTimer.singleShot(150, lambda: finish(0 if ready else 1))

    def finish(code: int):
        if window.error_box is not None:   # a refused file: say it where a script can read it
            print(f"ganstudio: {window.error_box.windowTitle()}: {window.error_box.text()}", file=sys.stderr)
        window.grab().save(path)
        window.close()
        app.exit(code)

    timer.timeout.connect(check)
    timer.start(50)


if __name__ == "__main__":
    sys.exit(main())
