"""Pyflakes' checks over the whole project, through ruff: a name used before its assignment in a
function (benchmarks/img2img.py once shadowed the imported `train` with a local and would have
stopped with UnboundLocalError), an undefined name, an unused import or variable. Only the F rules:
style is the reviewer's, not CI's."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")


def test_pyflakes_finds_nothing():
    folders = [str(ROOT / name) for name in ("trainer", "ganstudio", "benchmarks", "tests", "scripts")
               if (ROOT / name).exists()]
    result = subprocess.run([*ruff(), "check", "--no-cache", "--select", "F", "--output-format", "concise", *folders],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
