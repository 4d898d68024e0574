"""A training run as a separate process (`python -m trainer ...`): start a new run from a request,
resume one, stop it cleanly (SIGTERM: the trainer saves and writes status "stopped"; killed if it has
not gone in time). Qt-free: subprocess.Popen, with a thread that only reads the console output
into a queue; the owner's `poll()` hands out what arrived, on the owner's thread."""
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

    def arguments(self) -> list[str]:
        """The trainer's command line (after `python -m trainer`)."""
        args = ["--preset", self.preset, "--data", self.dataset, "--resolution", str(self.resolution),
                "--kimg", f"{self.kimg:g}", "--outdir", str(Path(self.outdir).resolve())]
        if self.metrics.strip():
            args += ["--metrics", self.metrics.strip(), "--metrics-kimg", f"{self.metrics_kimg:g}"]
        if self.threads:
            args += ["--threads", str(self.threads)]
        return args + shlex.split(self.extra)


@dataclass(frozen=True)
class ProcessNews:
    """What happened since the last poll."""
    output: str = ""                   # console text (stdout and stderr merged)
    run_dir: Path | None = None        # the run directory a new run just created
    exit_code: int | None = None       # set once, when the process has ended (-1: it never started)


class TrainingProcess:
    def __init__(self,
                 kill_after_s: float = 60.0):   # after stop(), kill if it has not exited by then
        self.kill_after_s = kill_after_s
        self.run_dir: Path | None = None
        self.popen: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self._outdir: Path | None = None
        self._known: set[str] = set()
        self._output: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._kill_at: float | None = None
        self._ended = False                  # the end was reported by poll()

    # ---- control ----
    def start_new(self, request: NewRunRequest) -> None:
        self._outdir = Path(request.outdir).resolve()
        self._outdir.mkdir(parents=True, exist_ok=True)
        self._known = {p.name for p in self._outdir.iterdir()}
        self._launch(request.arguments())

    def resume(self, run_dir: str | Path, kimg: float | None = None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self._launch(["--resume", str(self.run_dir)] + (["--kimg", f"{kimg:g}"] if kimg else []))

    def stop(self) -> None:
        """Ask the trainer to save and exit (SIGTERM); poll() kills it if it has not gone in time."""
        if self.is_running():
            self._output.put("\n[monitor] stopping: the trainer saves a snapshot, then exits\n")
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
            self._output.put(f"[monitor] trainer {how}\n")
        return ProcessNews(self._drain(), found, code)

    # ---- helpers ----
    def _launch(self, arguments: list[str]) -> None:
        command = [sys.executable, "-m", "trainer", *arguments]
        self._output.put("$ " + " ".join(shlex.quote(a) for a in command) + "\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")   # print() lines arrive as they are written
        try:
            self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            self._output.put(f"[monitor] could not start the trainer: {exc}\n")
            self.exit_code = -1
            return
        self._reader = threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True,
                                        name="trainer-output")
        self._reader.start()

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
