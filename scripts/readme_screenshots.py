"""Re-take the README's screenshots of the studio and the monitor on the bundled demo.

    QT_QPA_PLATFORM=offscreen python scripts/readme_screenshots.py
Each picture is the app's own `--screenshot` of a real window, after its first render.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from ganstudio.engine.demo import find_demo_checkpoint
from ganstudio.engine.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "readme"
SIZE = "1180x760"   # the studio's default window, as a user first sees it

# panel -> workspace fields: a conditional demo shows a class by name, mixing shows coarse layers
SCENES = {
    "latent": dict(seed=7, class_index=9, psi=0.7),
    "truncation": dict(seed=3, class_index=3, psi=0.5, truncation_center="class"),
    "mixing": dict(seed=0, class_index=0, psi=0.7, mix_seed=11,
                   mix_layers=(True, True, True, False, False, False, False, False),
                   grid_row_seeds=(0, 1, 2, 3), grid_col_seeds=(10, 11, 12, 13)),
    "directions": dict(seed=5, class_index=4, psi=0.7),
}


def main() -> None:
    checkpoint = find_demo_checkpoint()
    if checkpoint is None:
        raise SystemExit("no demo checkpoint under assets/demo")
    with tempfile.TemporaryDirectory() as tmp:
        for panel, fields in SCENES.items():
            workspace = Workspace(checkpoint=str(checkpoint), **fields)
            path = Path(tmp) / f"{panel}.json"
            workspace.save(path)
            subprocess.run([sys.executable, "-m", "ganstudio.app", str(path), "--panel", panel, "--size", SIZE,
                            "--screenshot", str(OUT / f"studio-{panel}.png")], check=True)
    subprocess.run([sys.executable, "-m", "ganstudio.app", "--monitor", str(ROOT / "assets" / "demo"),
                    "--size", SIZE, "--screenshot", str(OUT / "monitor.png")], check=True)
    print(f"wrote {len(SCENES) + 1} screenshots to {OUT}")


if __name__ == "__main__":
    main()
