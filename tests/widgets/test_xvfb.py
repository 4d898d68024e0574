"""The real window under a real X server (Xvfb), as on a user's desktop: the offscreen platform
used elsewhere hides missing system libraries, which made the studio abort on a bare Debian."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganstudio.system_libs import debian_package, missing_libraries
from conftest import export_tiny


def test_debian_package_names_from_sonames():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libdbus-1.so.3") == "libdbus-1-3"
    assert debian_package("libEGL.so.1") == "libegl1"


@pytest.mark.skipif(shutil.which("xvfb-run") is None,
                    reason="no xvfb-run here (Debian's xvfb; scripts/test.sh installs it when it runs as root)")
@pytest.mark.slow
def test_the_studio_opens_under_xvfb_and_draws(tmp_path):
    missing = missing_libraries()
    assert not missing, (f"Qt's X11 plugin cannot load: missing {', '.join(missing)} "
                         f"(python -m ganstudio.system_libs names the packages)")
    ckpt = export_tiny(tmp_path / "tiny.safetensors", resolution=16)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}   # Qt picks xcb, as on a desktop
    shot = tmp_path / "shot.png"
    out = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "ganstudio.app",
                          str(ckpt), "--screenshot", str(shot), "--size", "900x600", "--device", "cpu"],
                         capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (600, 900)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50   # a drawn window, not blank
