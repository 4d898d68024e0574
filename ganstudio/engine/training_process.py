"""A training run as a separate process (`python -m trainer ...`): start a new run from a request,
resume one, stop it cleanly (SIGTERM: the trainer saves and writes status "stopped"; killed if it has
not gone in time). Qt-free: subprocess.Popen, with a thread that only reads the console output
into a queue; the owner's `poll()` hands out what arrived, on the owner's thread. TrainerCommand is
that machinery for any `ganstudio-train` subcommand (the dataset tool runs through it too)."""
from __future__ import annotations

import codecs
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

RUN_DIR_NAME = re.compile(r"^\d{5}-")    # the trainer numbers the run directories it creates
READ_BYTES = 1 << 16


@dataclass(frozen=True)
class NewRunRequest:
    preset: str
    dataset: str          # a built-in name, an image folder or a .zip
    resolution: int       # pixels; ignored by 2-D point datasets
    kimg: float           # train until this many thousand real images
    outdir: str           # parent folder of the new run directory
    metrics: str = ""     # comma list for --metrics ("" none)
    metrics_kimg: float = 0.0   # --metrics-kimg (0: at the end only)
    threads: int = 0      # torch CPU threads (0: automatic, trainer.device.choose_threads)
    extra: str = ""       # further trainer options, shell-quoted (e.g. "--batch 16 --log-every 5")
    init: str = ""        # --init: fine-tune from this checkpoint, NVlabs pickle or run directory ("" scratch)
    augment: str = ""     # --augment: "ada", a DiffAugment policy, or "" for the preset's
    freeze_d: int = 0     # --freeze-d: D's first layers kept at their starting weights (0: none)

    def arguments(self) -> list[str]:
        """The trainer's command line (after `python -m trainer`); a resolution of 0 is left to the preset, or to
        the model an --init starts from."""
        args = ["--preset", self.preset, "--data", self.dataset]
        if self.resolution:
            args += ["--resolution", str(self.resolution)]
        args += ["--kimg", f"{self.kimg:g}", "--outdir", str(Path(self.outdir).resolve())]
        if self.metrics.strip():
            args += ["--metrics", self.metrics.strip(), "--metrics-kimg", f"{self.metrics_kimg:g}"]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.init:
            args += ["--init", str(Path(self.init).expanduser().resolve())]
        if self.augment:
            args += ["--augment", self.augment]
        if self.freeze_d:
            args += ["--freeze-d", str(self.freeze_d)]
        return args + shlex.split(self.extra)


@dataclass(frozen=True)
class ProcessNews:
    """What happened since the last poll."""
    output: str = ""                   # console text (stdout and stderr merged)
    run_dir: Path | None = None        # the run directory a new run just created
    exit_code: int | None = None       # set once, when the process has ended (-1: it never started)


class TrainerCommand:
    """One `python -m trainer ARGS...` process: its merged console output, stop (SIGTERM, then a kill once
    kill_after_s have passed) and its exit code, read through poll()."""
    name = "trainer"                                                     # in the console's [monitor] lines
    stop_message = "stopping: the trainer saves a snapshot, then exits"

    def __init__(self,
                 kill_after_s: float = 60.0):   # after stop(), kill if it has not exited by then
        self.kill_after_s = kill_after_s
        self.run_dir: Path | None = None
        self.popen: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self._output: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._kill_at: float | None = None
        self._ended = False                  # the end was reported by poll()

    # ---- control ----
    def stop(self) -> None:
        """Ask the process to finish (SIGTERM); poll() kills it if it has not gone in time."""
        if self.is_running():
            self._output.put(f"\n[monitor] {self.stop_message}\n")
            self.popen.terminate()
            self._kill_at = time.monotonic() + self.kill_after_s

    def kill(self) -> None:
        if self.is_running():
            self.popen.kill()

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, seconds: float) -> bool:
        """Wait for the process to end; False if it is still running after `seconds`."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def poll(self) -> ProcessNews:
        """The output that arrived, a new run's directory once it appears, and the exit code once
        the process has ended. Call it from one thread (the owner's)."""
        if self._ended:
            return ProcessNews(self._drain())
        if self._kill_at is not None and time.monotonic() > self._kill_at:
            self.kill()
            self._kill_at = None
        code = self.exit_code if self.popen is None else self.popen.poll()
        if code is not None and self._reader is not None:
            self._reader.join(timeout=2.0)   # the rest of the output, up to the end of the pipe
        found = self._find_run_dir()
        if code is None:
            return ProcessNews(self._drain(), found)
        self._ended, self.exit_code = True, code
        if self.popen is not None:   # one that never started has said so already
            how = "crashed" if code < 0 else f"exited with code {code}"   # < 0: ended by a signal
            self._output.put(f"[monitor] {self.name} {how}\n")
        return ProcessNews(self._drain(), found, code)

    def start(self, arguments: list[str]) -> None:
        """Run `python -m trainer *arguments` (one that cannot start ends at once, with exit code -1)."""
        command = [sys.executable, "-m", "trainer", *arguments]
        self._output.put("$ " + " ".join(shlex.quote(a) for a in command) + "\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")   # print() lines arrive as they are written
        try:
            self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            self._output.put(f"[monitor] could not start the {self.name}: {exc}\n")
            self.exit_code = -1
            return
        self._reader = threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True,
                                        name=f"{self.name}-output".replace(" ", "-"))
        self._reader.start()

    # ---- helpers ----
    def _read(self, stream) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")   # a character split across reads
        with stream:
            while chunk := os.read(stream.fileno(), READ_BYTES):
                self._output.put(decoder.decode(chunk))
        self._output.put(decoder.decode(b"", final=True))

    def _drain(self) -> str:
        pieces = []
        while True:
            try:
                pieces.append(self._output.get_nowait())
            except queue.Empty:
                return "".join(pieces)

    def _find_run_dir(self) -> Path | None:
        return None


class TrainingProcess(TrainerCommand):
    """A training run: a new one from a request, whose run directory poll() reports once it appears, or
    a resumed one."""

    def __init__(self,
                 kill_after_s: float = 60.0):   # after stop(), kill if it has not exited by then
        super().__init__(kill_after_s)
        self._outdir: Path | None = None
        self._known: set[str] = set()

    def start_new(self, request: NewRunRequest) -> None:
        self._outdir = Path(request.outdir).resolve()
        self._outdir.mkdir(parents=True, exist_ok=True)
        self._known = {p.name for p in self._outdir.iterdir()}
        self.start(request.arguments())

    def resume(self, run_dir: str | Path, kimg: float | None = None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.start(["--resume", str(self.run_dir)] + (["--kimg", f"{kimg:g}"] if kimg else []))

    def _find_run_dir(self) -> Path | None:
        """The directory a new run created in its outdir (once; None before and after)."""
        if self.run_dir is not None or self._outdir is None:
            return None
        try:
            fresh = sorted(p for p in self._outdir.iterdir()
                           if p.is_dir() and p.name not in self._known and RUN_DIR_NAME.match(p.name))
        except OSError:
            return None
        if fresh:
            self.run_dir = fresh[-1]
            return self.run_dir
        return None
