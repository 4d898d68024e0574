"""Imports point one way: trainer never imports Qt or ganstudio."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_trainer_never_imports_qt_or_ganstudio():
    offenders = []
    for path in (ROOT / "trainer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("PySide6", "pyqtgraph", "ganstudio", "PyQt5", "PyQt6")]
    assert not offenders, offenders


QT_MODULES = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "shiboken6")


def test_studio_engine_never_imports_qt():
    """ganstudio/engine is the Qt-free core: no Qt import in its files, and importing all of it
    (with everything it pulls in) loads no Qt module."""
    import subprocess
    import sys
    offenders = []
    modules = []
    for path in sorted((ROOT / "ganstudio" / "engine").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts   # engine/runlog/alerts.py: a subpackage's module
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.level == 0 else [f".{node.module}"]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in QT_MODULES or n.startswith((".widgets", "ganstudio.widgets", "ganstudio.app"))]
    assert not offenders, offenders
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + f"bad = [m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}]\n"
            + "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_window_screenshot_of_a_dcgan_run(tmp_path):
    import subprocess
    import sys
    import os
    from trainer.loop import train
    import conftest
    run = train(conftest.tiny_config("dcgan"), outdir=tmp_path, progress=False)
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "ganstudio.app", str(run.run_dir), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    from PIL import Image
    assert Image.open(shot).size[0] >= 420
