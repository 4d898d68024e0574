"""How a run names its data: a built-in by name, a folder or archive by absolute path.

A run directory outlives the shell it was started from: it is resumed, measured and watched from
other folders, so a path relative to where `ganstudio-train` once ran would find nothing there.
Runs written before paths were stored absolute are still resumed where their data can be found.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainer.data.datasets import BUILTINS, DataError
from trainer.files import recorded_source
from trainer.data.paired import TRANSLATION_BUILTINS


def is_builtin(source: str) -> bool:
    return source in BUILTINS or source in TRANSLATION_BUILTINS


def stored_source(source: str) -> str:
    """A new run's source as its config records it: a path that exists, absolute; anything else
    (a built-in name, or a path the data loader will refuse with its own message) as given."""
    if is_builtin(source) or not Path(source).expanduser().exists():
        return source
    return recorded_source(source, ())


def resumed_source(saved: str,               # the source in the run's config.json
                   given: str | None,        # --data given with --resume, or None
                   run_dir: Path,            # the run directory being resumed
                   ) -> tuple[str, str]:
    """(the source the resumed run reads, a note for the user or ""). The saved source while it
    can be found; a relative one (older runs) also beside the folder the run was started from
    with the default --outdir (the run directory's grandparent); `given` only when the saved data
    cannot be found, since other data would make it another training run."""
    saved_path = Path(saved).expanduser()
    found = is_builtin(saved) or saved_path.exists()
    if given is not None:
        if found:
            same = given == saved if is_builtin(saved) else stored_source(given) == os.path.abspath(saved_path)
            if not same:
                raise DataError(f"--data cannot change when resuming while the run's data '{saved}' is still "
                                "there: other data would make it another training run")
            return stored_source(saved), ""
        if is_builtin(given):
            raise DataError(f"--data {given}: only the run's own data, moved, can stand in for '{saved}'")
        if not Path(given).expanduser().exists():
            raise DataError(f"--data {given}: no such file or folder")
        return stored_source(given), f"the run's data '{saved}' is missing; reading {stored_source(given)} (--data)"
    if found:   # a relative path found from here is recorded absolute from now on
        return stored_source(saved), ""
    started_from = Path(run_dir).absolute().parent.parent / saved_path
    if not saved_path.is_absolute() and started_from.exists():
        return stored_source(str(started_from)), f"the run's data '{saved}' is read from {started_from}"
    raise DataError(f"the run's data '{saved}' is not found"
                    f"{'' if saved_path.is_absolute() else ' from here or from ' + str(started_from.parent)}: "
                    "if it moved, give its new place with --data PATH beside --resume")
