"""`ganstudio-train --nproc N` (alias --gpus N): start torchrun with N processes on this machine,
each running `python -m trainer` with the same options (less --nproc)."""
from __future__ import annotations

import signal
import subprocess
import sys


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line for `argv` on `nproc` local processes (--standalone: a local
    rendezvous on a free port, so two jobs on one machine never collide)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "trainer", *_without_nproc(argv)]


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--nproc", "--gpus"):
            skip = True
            continue
        if arg.startswith(("--nproc=", "--gpus=")):
            continue
        out.append(arg)
    return out


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run torchrun and return its exit code. SIGTERM sent to this launcher goes on to torchrun,
    which passes it to every rank (they stop together, after a checkpoint); Ctrl-C reaches them all
    through the terminal, and this launcher waits for them to finish."""
    process = subprocess.Popen(torchrun_command(nproc, argv))
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:   # the ranks got the same Ctrl-C; let them save and stop
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
