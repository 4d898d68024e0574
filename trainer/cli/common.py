"""What every subcommand shares: exit codes, how errors print, the --device and --threads options,
and the wrapper that turns the expected exceptions into one line on stderr and an exit code."""
from __future__ import annotations

import argparse
import functools
import math
import sys
from typing import Callable

from trainer.cli.options import ConfigHelpFormatter

PROG = "ganstudio-train"
EXIT_OK = 0              # done
EXIT_FAILED = 1          # the inputs were fine, the work failed (a write, an export, a failed run)
EXIT_USAGE = 2           # the command line or its input files are wrong (argparse's code too)
EXIT_INTERRUPTED = 130   # Ctrl-C outside a training run (128 + SIGINT, as shells report it)
MAX_THREADS = 4096


class UsageError(ValueError):
    """A wrong command line or input file: printed as one line, exit EXIT_USAGE."""


class CommandFailed(Exception):
    """The work itself failed though its inputs were fine: printed as one line, exit EXIT_FAILED."""


def prefix(command: str | None) -> str:
    """"ganstudio-train generate" (or "ganstudio-train" for training, the default command)."""
    return f"{PROG} {command}" if command else PROG


def error(command: str | None, message: str) -> None:
    _say(f"{prefix(command)}: error: {message}")


def note(command: str | None, message: str) -> None:
    _say(f"{prefix(command)}: note: {message}")


def _say(line: str) -> None:
    from tqdm import tqdm
    tqdm.write(line, file=sys.stderr)   # above a progress bar, if one is showing


def guarded(command: str | None, body: Callable[[list[str]], int | None]) -> Callable[[list[str]], int]:
    """body(argv) -> exit code (None: EXIT_OK), with the expected exceptions turned into a message and a code:
    CommandFailed -> 1; UsageError, ConfigError, DataError, CheckpointError (all ValueErrors) and OSError -> 2;
    KeyboardInterrupt -> 130. Anything else is a bug and keeps its traceback."""
    @functools.wraps(body)
    def run(argv: list[str]) -> int:
        try:
            code = body(argv)
        except CommandFailed as exc:
            error(command, str(exc))
            return EXIT_FAILED
        except (ValueError, OSError) as exc:
            error(command, str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt:
            error(command, "interrupted")
            return EXIT_INTERRUPTED
        return EXIT_OK if code is None else code
    return run


def subcommand(command: str):
    """Decorator for a subcommand's `main(argv)`: runs it through `guarded`."""
    return lambda body: guarded(command, body)


def command_parser(command: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A subcommand's parser: its prog name, and each default shown once (options.ConfigHelpFormatter)."""
    return argparse.ArgumentParser(prog=prefix(command), description=description, epilog=epilog,
                                   formatter_class=ConfigHelpFormatter)


def add_device_option(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    parser.add_argument("--device", default=default,
                        help="cpu, cuda, cuda:N, mps, or auto (the best this machine has)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=number(int, 0, MAX_THREADS), default=0,
                        help="CPU threads for torch (0: automatic, 1 on 2 cores, else half the free cores)")


class number:
    """An argparse type for a number with a range: argparse converts the text (int or float) and
    parse_command_line checks the value, so a value out of range is a one-line usage error that
    names the option, the value and the range."""

    def __init__(self, kind: type, low: float | None = None, high: float | None = None, above: float | None = None):
        self.kind, self.low, self.high, self.above = kind, low, high, above
        self.__name__ = kind.__name__   # argparse's "invalid int value: 'x'" for text that is no number

    def __call__(self, text: str):
        return self.kind(text)

    def check(self, flag: str, value) -> None:
        low, high, above = self.low, self.high, self.above
        if math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high) \
                and (above is None or value > above):
            return
        if above is not None:
            wanted = f"above {above:g}" + (f" and at most {high:g}" if high is not None else "")
        elif low is not None:
            wanted = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        else:
            wanted = f"at most {high:g}" if high is not None else ""
        kind = "a whole number" if self.kind is int else "a finite number"
        raise UsageError(f"{flag} {value}: expected {kind} {wanted}".rstrip())


def require_latent_model(G, checkpoint) -> None:
    """UsageError when a command that draws from seeds is given an image-to-image checkpoint."""
    if getattr(G, "translates", False):
        raise UsageError(f"{checkpoint} is an image-to-image model ({G.checkpoint_info['config']['arch']}): it "
                         "translates images rather than drawing them from seeds; use `ganstudio-train translate`")


def resolve_device(requested: str) -> str:
    """--device -> a device this machine has ("auto": the best one). UsageError for a malformed or missing one."""
    import torch
    from trainer.device import pick_device
    if requested != "auto":
        try:
            parsed = torch.device(requested)
        except RuntimeError:   # torch's message names the string only
            raise UsageError(f"--device {requested!r}: expected cpu, cuda, cuda:N, mps or auto") from None
        if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    try:
        return pick_device(requested)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse argv; a --device is checked and resolved ("auto" -> a device), a --threads applied to torch."""
    args = parser.parse_args(argv)
    for action in parser._actions:   # every number's range, checked where it is read
        value = getattr(args, action.dest, None)
        if isinstance(action.type, number) and value is not None:
            action.type.check(action.option_strings[0], value)
    if getattr(args, "device", None) is not None:
        args.device = resolve_device(args.device)
    if hasattr(args, "threads"):   # 0 asks for the measured default (trainer.device.choose_threads)
        import torch
        from trainer.device import choose_threads
        purpose = {"encoder": "train", "invert": "invert", "metrics": "metrics"}.get(parser.prog.split()[-1], "render")
        torch.set_num_threads(choose_threads(args.threads, purpose)[0])
    return args
