"""Where the bundled demo model lives: the newest checkpoint under assets/demo."""
from __future__ import annotations

from pathlib import Path

from trainer.files import step_from_name

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"  # works for editable installs too


def find_demo_checkpoint(demo_dir: Path = DEMO_DIR) -> Path | None:
    """Newest *.safetensors in demo_dir/checkpoints or demo_dir (by step in the name, then by
    modification time), or None when there is none."""
    candidates = [*Path(demo_dir, "checkpoints").glob("*.safetensors"), *Path(demo_dir).glob("*.safetensors")]
    if not candidates:
        return None

    def order(path: Path):
        step = step_from_name(path)
        return (-1 if step is None else step, path.stat().st_mtime)

    return max(candidates, key=order)


def missing_demo_message(demo_dir: Path = DEMO_DIR) -> str:
    return (f"No bundled demo model found (looked for *.safetensors in {demo_dir}). "
            "Open a checkpoint with File > Open, drop one on the window, or run `ganstudio PATH`.")
