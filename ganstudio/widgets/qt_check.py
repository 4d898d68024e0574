"""A check for a Qt binding defect that crashes long sessions.

PySide6 6.12.0 on Python 3.11 drops one reference to None on every call of a Qt method that
returns nothing (and to True/False for methods returning bool). On Python versions before 3.12
these objects are not immortal, so after some hundred thousand calls - minutes of dragging a
slider - the interpreter aborts with "deallocating None". PySide6 6.11.3 does not do this.
"""
from __future__ import annotations

import sys

CALLS = 200


def binding_refcount_problem() -> str | None:
    """Call a Qt setter CALLS times and see whether None loses references; a message or None."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QObject
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        probe.setObjectName("probe")
    lost = before - sys.getrefcount(None)
    if lost < CALLS // 2:
        return None
    return (f"PySide6 {pyside_version} on Python {sys.version.split()[0]} loses a reference to None on every "
            f"Qt call ({lost} in {CALLS} calls); a long session will crash with 'deallocating None'. "
            "Install another PySide6 version (e.g. pip install 'PySide6==6.11.3').")
