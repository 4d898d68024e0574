"""What every subcommand shares: exit codes, how errors print, the --device and --threads options,
and the wrapper that turns the expected exceptions into one line on stderr and an exit code."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable

from trainer.cli.options import ConfigHelpFormatter

PROG = "ganstudio-train"
EXIT_OK = 0              # done
EXIT_FAILED = 1          # the inputs were fine, the work failed (a write, an export, a failed run)
EXIT_USAGE = 2           # the command line or its input files are wrong (argparse's code too)
EXIT_INTERRUPTED = 130   # Ctrl-C outside a training run (128 + SIGINT, as shells report it)


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
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="CPU threads for torch (0: automatic, 1 on 2 cores, else half the free cores)")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 0")
    return value


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
    if getattr(args, "device", None) is not None:
        args.device = resolve_device(args.device)
    if hasattr(args, "threads"):   # 0 asks for the measured default (trainer.device.choose_threads)
        import torch
        from trainer.device import choose_threads
        purpose = {"encoder": "train", "invert": "invert", "metrics": "metrics"}.get(parser.prog.split()[-1], "render")
        torch.set_num_threads(choose_threads(args.threads, purpose)[0])
    return args
