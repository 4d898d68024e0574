"""The training monitor's model: the open runs, the training processes started from the studio,
and what to read when. Qt-free; the Monitor widget shows it and forwards the user's actions.

Reading never blocks the caller: `poll()` reads each RunLog for at most `tick_budget_s`, in chunks,
and says when to come back (at once while a big log still has a backlog) and whether a redraw is
due. Views subscribe to `model.events`:

  run_added(RunLog)     run_removed(RunLog)
  run_started(RunLog)   a training process started here created its run directory (now open)
  output(str)           console text of the processes started here
  processes(None)       a process started or ended
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .events import EmitterGroup
from .runlog import RunLog
from .training_process import NewRunRequest, TrainingProcess

REDRAW_EVERY_S = 1.0        # while catching up, redraw the plots this often (a repaint costs more than a chunk)
LIST_EVERY_S = 0.2          # and update the run list this often


@dataclass(frozen=True)
class Tick:
    """What one poll found and asks of the view."""
    catching_up: bool               # some log still has lines to read
    redraw: bool                    # redraw the plots and the sample timeline now
    update_list: bool               # update the run list, the read progress and the buttons now
    next_poll_s: float | None       # when to poll again (None: nothing left to watch)


class MonitorModel:
    def __init__(self,
                 poll_interval_s: float = 0.5,    # how often a caught-up run is checked for new lines
                 tick_budget_s: float = 0.016,    # reading time per poll while catching up
                 chunk_bytes: int = 32 << 10,     # bytes read per RunLog.poll while catching up
                 stall_seconds: float = 300.0,    # silence after which a running run counts as stalled
                 kill_after_s: float = 60.0):     # a stopped trainer still running after this is killed
        self.poll_interval_s = poll_interval_s
        self.tick_budget_s = tick_budget_s
        self.chunk_bytes = chunk_bytes
        self.stall_seconds = stall_seconds
        self.kill_after_s = kill_after_s
        self.runs: list[RunLog] = []
        self.processes: dict[Path, TrainingProcess] = {}   # by resolved run directory
        self.pending: list[TrainingProcess] = []           # new runs whose directory is not known yet
        self.events = EmitterGroup(["run_added", "run_removed", "run_started", "output", "processes"])
        self._last_draw = float("-inf")
        self._last_list_update = float("-inf")

    # ---- runs ----
    def add_run(self, path: str | Path) -> RunLog:
        """Start watching a run directory (or its events.jsonl); an open one is not added twice.
        FileNotFoundError when it is not a folder."""
        run = self.find_run(path)
        if run is not None:
            return run
        run_dir = Path(path).resolve()
        run = RunLog(run_dir.parent if run_dir.is_file() else run_dir, stall_seconds=self.stall_seconds)
        self.runs.append(run)
        self.events.run_added.emit(run)
        return run

    def find_run(self, path: str | Path) -> RunLog | None:
        run_dir = Path(path).resolve()
        run_dir = run_dir.parent if run_dir.is_file() else run_dir
        return next((run for run in self.runs if run.run_dir.resolve() == run_dir), None)

    def remove_run(self, run: RunLog) -> None:
        if run in self.runs:
            self.runs.remove(run)
            self.events.run_removed.emit(run)

    def is_reading(self) -> bool:
        """Some open log has lines not yet read."""
        return any(run.backlog() for run in self.runs)

    def read_fraction(self) -> float:
        """How much of the open logs has been read, 0-1."""
        total = sum(run.file_size() for run in self.runs)
        return sum(run.bytes_read for run in self.runs) / max(total, 1)

    # ---- processes ----
    def start_run(self, request: NewRunRequest) -> TrainingProcess:
        """Start a new training process; its run directory is opened as soon as it appears."""
        process = TrainingProcess(self.kill_after_s)
        process.start_new(request)   # ValueError: extra options that do not parse (nothing started)
        self.pending.append(process)
        self._relay(process)
        self.events.processes.emit(None)
        return process

    def stop_run(self, run: RunLog | None) -> None:
        process = self.process_of(run)
        if process is not None:
            process.stop()
            self._relay(process)

    def resume_run(self, run: RunLog | None, kimg: float | None = None) -> TrainingProcess | None:
        """Resume a run from its state/last.pt (until `kimg` when given); None when it has no state
        to resume from (the console says so) or a process of it is running already."""
        if run is None or self.process_of(run) is not None:
            return None
        if not self.has_state(run):
            self.events.output.emit(f"[monitor] {run.name} has no state/last.pt to resume from\n")
            return None
        process = TrainingProcess(self.kill_after_s)
        self.processes[run.run_dir.resolve()] = process
        process.resume(run.run_dir, kimg)
        self._relay(process)
        self.events.processes.emit(None)
        return process

    def process_of(self, run: RunLog | None) -> TrainingProcess | None:
        """The running process writing `run`, if it was started here."""
        process = self.processes.get(run.run_dir.resolve()) if run is not None else None
        return process if process is not None and process.is_running() else None

    def shutdown(self, wait_s: float = 30.0) -> None:
        """Stop every trainer started from here (each saves first) and wait for them."""
        processes = list(self.processes.values()) + self.pending
        for process in processes:
            process.stop()
        for process in processes:
            if process.is_running() and not process.wait(wait_s):
                process.kill()
                process.wait(5.0)

    # ---- what the view shows ----
    @staticmethod
    def has_state(run: RunLog) -> bool:
        return (run.run_dir / "state" / "last.pt").is_file()

    def state_text(self, run: RunLog) -> str:
        """The run list's State column: the log's state, or what the process is doing before it
        has written one."""
        process = self.process_of(run)
        state = run.state if run.state != "unknown" else ("starting" if process else "no log")
        if process is not None and state != "running":
            state += " (process)"
        return state

    @staticmethod
    def run_info(run: RunLog | None) -> str:
        """What the selected run is, in a line: its preset, data, architecture at its resolution, and
        where it started from ("from scratch", or the model its --init named)."""
        if run is None:
            return ""
        if not run.config:   # a run started here writes its config.json after its directory appears
            run.config = run._read_config()
        config = run.config
        if not config:
            return ""
        data, model, train = (config.get(key) if isinstance(config.get(key), dict) else {}
                              for key in ("data", "model", "train"))
        resolution = model.get("img_resolution")
        what = [str(config.get("preset") or ""), str(data.get("source") or ""),
                f"{model.get('arch', '')} {resolution} px" if resolution else str(model.get("arch") or "")]
        init = train.get("init") or ""
        start = f"started from {Path(init).name} ({init})" if init else "started from scratch"
        return " · ".join([part for part in what if part] + [start])

    def can_stop(self, run: RunLog | None) -> bool:
        return self.process_of(run) is not None

    def can_resume(self, run: RunLog | None) -> bool:
        """A run that is not running, or says "running" but has gone silent (its trainer was
        killed), with a state to resume from and no process of it here."""
        if run is None or self.process_of(run) is not None:
            return False
        idle = run.state != "running" or any(a.kind == "stalled" for a in run.alerts)
        return idle and self.has_state(run)

    def can_close(self, run: RunLog | None) -> bool:
        return run is not None and self.process_of(run) is None

    # ---- polling ----
    def poll(self, now: float | None = None) -> Tick:
        """Read what the logs and the processes have written since the last poll (at most
        `tick_budget_s` of log reading), and say what the view should do."""
        deadline = time.perf_counter() + self.tick_budget_s
        ended = self._poll_processes()
        catching_up = False
        for run in list(self.runs):
            while True:
                run.poll(self.chunk_bytes)
                if not run.backlog() or time.perf_counter() > deadline:
                    break
            catching_up = catching_up or run.backlog() > 0
        now = time.perf_counter() if now is None else now
        redraw = not catching_up or now - self._last_draw > REDRAW_EVERY_S
        update_list = not catching_up or now - self._last_list_update > LIST_EVERY_S
        self._last_draw = now if redraw else self._last_draw
        self._last_list_update = now if update_list else self._last_list_update
        watching = self.runs or self.processes or self.pending
        # a trainer that just ended wrote its last lines: read them at once
        next_poll = 0.0 if catching_up or ended else self.poll_interval_s
        return Tick(catching_up, redraw, update_list, next_poll if watching else None)

    def _poll_processes(self) -> bool:
        """Relay the processes' news; True when one has ended."""
        ended = False
        for process in self.pending + list(self.processes.values()):
            news = self._relay(process)
            if news.run_dir is not None:
                self._on_run_dir_found(process, news.run_dir)
            if news.exit_code is not None:
                self._forget(process)
                ended = True
        return ended

    def _relay(self, process: TrainingProcess):
        news = process.poll()
        if news.output:
            self.events.output.emit(news.output)
        return news

    def _on_run_dir_found(self, process: TrainingProcess, run_dir: Path) -> None:
        self.processes[run_dir.resolve()] = process
        if process in self.pending:
            self.pending.remove(process)
        self.events.run_started.emit(self.add_run(run_dir))

    def _forget(self, process: TrainingProcess) -> None:
        for key, p in list(self.processes.items()):
            if p is process:
                del self.processes[key]
        if process in self.pending:
            self.pending.remove(process)
        self.events.processes.emit(None)
