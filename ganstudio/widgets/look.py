"""The application's icon and style sheet, read from the installed `ganstudio_resources` package."""
from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap

RESOURCES = "ganstudio_resources"


def resource_bytes(name: str) -> bytes:
    """The bytes of a file in resources/ (icon, style sheet, .desktop entry)."""
    return (files(RESOURCES) / name).read_bytes()


def app_icon() -> QIcon:
    """The GAN Studio icon at the sizes window managers ask for (drawn from the SVG)."""
    pixmap = QPixmap()
    if not pixmap.loadFromData(resource_bytes("ganstudio.svg"), "SVG"):
        return QIcon()   # no SVG image plugin: the platform's default icon, never a crash
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(pixmap.scaled(size, size))
    return icon


def style_sheet() -> str:
    return resource_bytes("style.qss").decode("utf-8")


def install_desktop_entry(data_home: Path | None = None) -> list[Path]:
    """Put the .desktop entry and the icon where Linux menus look for them (XDG data home,
    ~/.local/share by default). Returns the files written."""
    import os
    home = Path(data_home or os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    targets = [(home / "applications" / "ganstudio.desktop", "ganstudio.desktop"),
               (home / "icons" / "hicolor" / "scalable" / "apps" / "ganstudio.svg", "ganstudio.svg")]
    for target, name in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        with as_file(files(RESOURCES) / name) as source:
            shutil.copyfile(source, target)
    return [t for t, _ in targets]
