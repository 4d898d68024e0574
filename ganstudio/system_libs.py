"""Which system libraries Qt's X11 platform plugin lacks on this machine, and the Debian packages
that provide them. Qt itself only says "could not load the Qt platform plugin xcb" (and on Debian
blames libxcb-cursor0 even when that is present), so the launch script asks here instead:

  python -m ganstudio.system_libs          prints the missing packages, one line; exit 1 if any

No Qt is imported: the check reads the plugin's shared-library links with `ldd`.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

# sonames whose Debian package does not follow the usual rule (name + version)
PACKAGE_OF = {"libGL.so.1": "libgl1", "libEGL.so.1": "libegl1", "libOpenGL.so.0": "libopengl0"}


def xcb_plugin_files() -> list[Path]:
    """The xcb platform plugin and the Qt library it loads, where PySide6 installed them."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    return [p for p in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
            if p.is_file()]


def missing_libraries(files: list[Path] | None = None) -> list[str]:
    """Sonames `ldd` cannot find for the given files (default: the xcb plugin); [] when ldd is absent."""
    missing: set[str] = set()
    for path in xcb_plugin_files() if files is None else files:
        try:
            out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        missing |= set(re.findall(r"^\s*(\S+) => not found", out, re.M))
    return sorted(missing)


def debian_package(soname: str) -> str:
    """'libxcb-icccm.so.4' -> 'libxcb-icccm4', 'libxkbcommon-x11.so.0' -> 'libxkbcommon-x11-0'."""
    if soname in PACKAGE_OF:
        return PACKAGE_OF[soname]
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    return (name + ("-" if name[-1:].isdigit() else "") + version).lower()


def main() -> int:
    packages = sorted({debian_package(s) for s in missing_libraries()})
    if packages:
        print(" ".join(packages))
    return 1 if packages else 0


if __name__ == "__main__":
    sys.exit(main())
