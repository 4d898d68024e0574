"""Imports point one way: trainer never imports Qt or ganstudio."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_window_screenshot_of_a_dcgan_run(tmp_path):
    import subprocess
    import sys
    import os
    from trainer.training.loop import train
    import conftest
    run = train(conftest.tiny_config("dcgan"), outdir=tmp_path, progress=False)
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "ganstudio.app", str(run.run_dir), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    from PIL import Image
    assert Image.open(shot).size[0] >= 420


def _internal_imports(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports anywhere in its file (lazy imports count: a
    circle through a function-level import is still a circle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        here = parts[:-1]                      # the package this file belongs to
        edges = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == package:
                    edges.add(target)
    modules = set(graph)
    return {m: {t for t in targets if t in modules and t != m and not m.startswith(t + ".")}
            for m, targets in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_has_no_circle():
    """A package's __init__ re-exporting its modules is not a circle; a module importing a module
    that imports it back (even lazily, inside a function) is."""
    for package in ("trainer", "ganstudio"):
        graph = _internal_imports(package)
        assert not _cycles(graph), _cycles(graph)
    # the test can fail: the circle this project once had (loop -> metrics -> compute -> loop)
    graph = _internal_imports("trainer")
    graph["trainer.metrics.compute"] = graph["trainer.metrics.compute"] | {"trainer.training.loop"}
    assert any("trainer.training.loop" in c and "trainer.metrics.compute" in c for c in _cycles(graph))


def test_no_source_file_is_too_long():
    """Files a reader can hold in mind: at most 500 lines each."""
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted([*ROOT.glob("trainer/**/*.py"), *ROOT.glob("ganstudio/**/*.py")])
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500]
    assert not long, long


def test_the_run_log_reader_does_not_load_torch():
    """The monitor reads logs and renames files through light modules (trainer.files, trainer.events),
    not through trainer's model code."""
    import subprocess
    import sys
    code = "import sys, ganstudio.engine.runlog, trainer.files\nassert 'torch' not in sys.modules, 'torch loaded'\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr


TORCH_MODULES = ("torch", "torchvision", "torchaudio")


def _widget_offences(source: str, name: str) -> list[str]:
    """Imports of torch anywhere in a widget module's source (at the top, or lazily inside a
    function), and reaches into a renderer's generator (`renderer.G`): model work is the engine's."""
    offences = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and (getattr(node.func, "id", "") == "__import__"
                                             or getattr(node.func, "attr", "") == "import_module"):
            names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        offences += [f"{name}:{node.lineno}: imports {n}" for n in names if n.split(".")[0] in TORCH_MODULES]
        if isinstance(node, ast.Attribute) and node.attr == "G":
            offences.append(f"{name}:{node.lineno}: reaches into .G")
    return offences


def test_no_widget_module_imports_torch_or_touches_the_generator():
    """The Qt layer shows plain data: no module under ganstudio/widgets imports torch, even lazily,
    and none reaches into the renderer's generator; the worker's jobs do that work."""
    offences = []
    for path in sorted((ROOT / "ganstudio" / "widgets").rglob("*.py")):
        offences += _widget_offences(path.read_text(encoding="utf-8"), path.name)
    assert not offences, offences
    # the check can fail: the export job as the widget layer once wrote it
    once = ("def run(renderer, progress, preview):\n    import torch\n"
            "    return TimelineRenderer(renderer.G, line, renderer.mapper, torch.float32)\n")
    assert _widget_offences(once, "timeline_export.py") == ["timeline_export.py:2: imports torch",
                                                           "timeline_export.py:3: reaches into .G"]
    assert _widget_offences("from torch.nn import functional\nimportlib.import_module('torch')\n", "x.py") == [
        "x.py:1: imports torch.nn", "x.py:2: imports torch"]

