"""The commands README.md, docs/ and benchmarks/README.md show must work as written.

Fast: every command line (fenced blocks and inline code) names a subcommand and options that the real
CLI's --help lists; a script or benchmark it names exists. Slow: every `ganstudio-train` command in a
fenced block runs for real, in order, in a scratch folder holding the bundled demo and a few photos,
with overrides appended for tiny runs (argparse keeps the last value). A command whose input the docs
only name (ffhq256.zip, my_samples/) is checked, not run."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainer.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
SUBCOMMANDS = set(COMMANDS) - {"train"}   # the CLI's own registry: a new subcommand is known here at once
TRANSLATION_PRESETS = {"pix2pix", "cyclegan"}
INPUT_OPTIONS = {"--checkpoint", "--resume", "--workspace", "--images", "--config", "--init", "--encoder",
                 "--audio", "--weights"}
OUTPUT_OPTIONS = {"--out", "--json", "--outdir"}
FILE_SUFFIX = re.compile(r"\.(png|jpe?g|gif|pkl|pt|json|wav|safetensors|zip)$", re.I)
# what each kind of command gets appended for a tiny real run; an option the command lacks is left out
TINY = {"train": ["--kimg", "0.004", "--threads", "1", "--outdir", "runs", "--metrics-images", "16"],
        "generate": [],
        "metrics": ["--num-samples", "16", "--num-real", "16", "--threads", "1", "--no-progress"],
        "invert": ["--steps", "2", "--pti-steps", "2", "--init-samples", "16", "--threads", "1"],
        "encoder": ["--kimg", "0.016", "--batch", "8", "--eval-samples", "8", "--threads", "1"],
        "render-video": ["--fps", "2"],
        "translate": [], "import": [], "presets": [], "dataset": [], "blend": []}


@dataclass(frozen=True)
class Command:
    page: str           # path relative to the repository
    line: int           # 1-based line of the command's first line
    text: str           # as written, continuation lines joined
    fenced: bool        # in a fenced block (run for real) or inline code (checked only)
    block: int = -1     # index of its fenced block in the page

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def command_tokens(text: str) -> list[str]:
    """A command line without its comment, brackets of optional parts dropped."""
    return shlex.split(text.replace("[", " ").replace("]", " "), comments=True)


COMMAND_WORDS = ("ganstudio-train", "ganstudio", "torchrun", "xvfb-run", "bash", "python", ".venv/bin/python")


def looks_like_command(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0] in COMMAND_WORDS and is_command(command_tokens(text))


def is_command(tokens: list[str]) -> bool:
    if not tokens:
        return False
    first = tokens[0]
    return (first in ("ganstudio-train", "ganstudio", "torchrun", "xvfb-run")
            or (first == "bash" and len(tokens) > 1 and tokens[1].startswith("scripts/"))
            or (first.endswith("python") and len(tokens) > 1
                and (tokens[1:3] == ["-m", "trainer"] or tokens[1].startswith("benchmarks/"))))


def page_commands(path: Path) -> list[Command]:
    """Command lines of fenced blocks (any language) and of inline code spans elsewhere."""
    rel, text = str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    found, prose, block = [], [], -1
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            block += 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                start, joined = i, lines[i]
                while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    joined = joined.rstrip()[:-1] + " " + lines[i].strip()
                if looks_like_command(joined):
                    found.append(Command(rel, start + 1, " ".join(joined.split()), True, block))
                i += 1
        else:
            prose.append((i, lines[i]))
        i += 1
    prose_text = "\n".join(line for _, line in prose)
    for match in re.finditer(r"`([^`]+)`", prose_text):
        span = " ".join(match[1].split())
        with contextlib.suppress(ValueError):
            if looks_like_command(span):
                line = prose[prose_text.count("\n", 0, match.start())][0] + 1
                found.append(Command(rel, line, span, False))
    return found


ALL = [c for page in PAGES for c in page_commands(page)]


# ---- what the real CLIs accept ----
def captured_help(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        with contextlib.suppress(SystemExit):
            main(argv)
    return out.getvalue()


_HELP: dict[tuple, str] = {}


def help_text(tool: str, argv: tuple[str, ...]) -> str:
    if (tool, argv) not in _HELP:
        if tool == "trainer":
            from trainer.cli import main
        else:
            from ganstudio.app import main
        _HELP[tool, argv] = captured_help(main, [*argv, "--help"])
    return _HELP[tool, argv]


def options_in(help_or_source: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)", help_or_source)) | {"-h"}


def trainer_argv(tokens: list[str]) -> list[str] | None:
    """The `ganstudio-train` arguments of a command line, or None when it runs something else."""
    if tokens[0] == "ganstudio-train":
        return tokens[1:]
    if "-m" in tokens and tokens[tokens.index("-m") + 1:][:1] == ["trainer"]:
        return tokens[tokens.index("-m") + 2:]
    return None


def subcommand_of(argv: list[str]) -> str:
    return argv[0] if argv and not argv[0].startswith("-") else "train"


def help_key(argv: list[str]) -> tuple[str, ...]:
    """The argv prefix whose --help lists this command's options."""
    sub = subcommand_of(argv)
    if sub != "train":
        return (sub,)
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv[:-1] else None
    return ("--preset", preset) if preset in TRANSLATION_PRESETS else ()


def given_options(tokens: list[str]) -> list[str]:
    return [t.split("=")[0] for t in tokens if t.startswith("-") and not re.fullmatch(r"-[\d.]+", t)]


def problems(command: Command) -> list[str]:
    """What in a documented command line does not exist in the real CLI (empty: all is well)."""
    tokens = command_tokens(command.text)
    if tokens[0] == "xvfb-run":
        tokens = [t for t in tokens[1:] if t != "-a"]
    if tokens[0] == "bash":
        script = ROOT / tokens[1]
        if not script.is_file():
            return [f"{tokens[1]} does not exist"]
        if tokens[1] != "scripts/studio.sh":   # test.sh passes its arguments to pytest
            return []
        tokens = ["ganstudio", *tokens[2:]]
    if tokens[0].endswith("python") and tokens[1].startswith("benchmarks/"):
        script = ROOT / tokens[1]
        if not script.is_file():
            return [f"{tokens[1]} does not exist"]
        source = script.read_text(encoding="utf-8")
        return [f"{tokens[1]} has no option {o}" for o in given_options(tokens[2:])
                if f'"{o}"' not in source and o not in ("-h", "--help")]
    if tokens[0] == "ganstudio":
        known = options_in(help_text("ganstudio", ()))
        return [f"ganstudio has no option {o}" for o in given_options(tokens[1:]) if o not in known]
    argv = trainer_argv(tokens)
    if argv is None:   # torchrun's own options are torchrun's business
        return [] if tokens[0] == "torchrun" else [f"not a known command: {tokens[0]}"]
    sub = subcommand_of(argv)
    if sub != "train" and sub not in SUBCOMMANDS:
        return [f"ganstudio-train has no subcommand {sub!r}"]
    text = help_text("trainer", help_key(argv))
    if sub != "train" and f"ganstudio-train {sub}" not in text and not (sub == "presets" and "dcgan" in text):
        return [f"ganstudio-train {sub} --help does not describe {sub!r}"]
    known = options_in(text)
    return [f"ganstudio-train {sub} has no option {o}" for o in given_options(argv) if o not in known]


def test_pages_show_commands():
    pages = {c.page for c in ALL if c.fenced}
    assert {"README.md", "docs/training.md", "docs/inversion.md", "docs/metrics.md"} <= pages


def test_a_misspelt_option_or_subcommand_is_caught():
    assert problems(Command("x.md", 1, "ganstudio-train --data digits --kimgg 3", True))
    assert problems(Command("x.md", 1, "ganstudio-train invert --checkpoint C a.png --out o --stepz 3", True))
    assert problems(Command("x.md", 1, "ganstudio-train invrt --checkpoint C", True))
    assert problems(Command("x.md", 1, "ganstudio --screenshoot out.png", False))
    assert problems(Command("x.md", 1, "bash scripts/studo.sh", False))
    assert not problems(Command("x.md", 1, "ganstudio-train --data digits --kimg 3  # fine", True))


@pytest.mark.parametrize("command", ALL, ids=lambda c: f"{c.page}:{c.line}")
def test_documented_command_exists(command):
    assert not problems(command), f"{command.where}\n" + "\n".join(problems(command))


# ---- real runs ----
def needed_inputs(argv: list[str]) -> list[str]:
    """Files and folders a command reads: input options' values and file-like positionals."""
    inputs = []
    for k, token in enumerate(argv):
        previous = argv[k - 1] if k else ""
        if previous in INPUT_OPTIONS:
            inputs.append(token)
        elif previous == "--data" and ("/" in token or token.endswith(".zip")):
            inputs.append(token)
        elif not token.startswith("-") and FILE_SUFFIX.search(token) and not previous.startswith("-"):
            inputs.append(token)
    return inputs


def tiny_metrics(spec: str) -> str:
    """fid2k,kid,modes -> fid16,kid16,modes: the same metrics on 16 samples."""
    return ",".join(name if name == "modes" else re.sub(r"\d+k?$", "", name) + "16" for name in spec.split(","))


def tiny_argv(argv: list[str], cwd: Path) -> list[str]:
    sub = subcommand_of(argv)
    known = options_in(help_text("trainer", help_key(argv)))
    extra = TINY.get(sub, [])   # a subcommand with nothing to shrink gets nothing appended
    if sub == "train" and "--resume" in argv:   # one more step than the run has
        events = (cwd / argv[argv.index("--resume") + 1] / "events.jsonl").read_text().splitlines()
        done = max(json.loads(line)["kimg"] for line in events)
        extra = ["--kimg", f"{done + 0.004:.3f}", "--threads", "1"]
    tiny = []
    for k in range(0, len(extra), 2):
        if extra[k] in known:
            tiny += extra[k:k + 2]
    if "--metrics" in argv[:-1]:
        tiny += ["--metrics", tiny_metrics(argv[argv.index("--metrics") + 1])]
    return [*argv, *tiny]


def scratch_folder(folder: Path, shared: Path) -> None:
    """The demo, the photo the docs use, and the inputs they only name, made from real data."""
    from skimage import data
    from PIL import Image
    from conftest import write_beep
    (folder / "assets").symlink_to(shared)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.camera()).save(folder / "drawing.png")
    Image.fromarray(data.chelsea()).save(folder / "boot.png")
    write_beep(folder / "song.wav")
    nvlabs = ROOT.parent / "shared" / "fixtures" / "nvlabs" / "sg2ada-uncond-32.pkl"
    if nvlabs.is_file():
        shutil.copy(nvlabs, folder / "ffhq.pkl")


@pytest.fixture(scope="session")
def shared_assets(tmp_path_factory):
    """A copy of assets/ (commands may write beside the demo, e.g. an encoder)."""
    target = tmp_path_factory.mktemp("assets") / "assets"
    shutil.copytree(ROOT / "assets", target, ignore=shutil.ignore_patterns("readme"))
    return target


SCRATCH_INPUTS = ("assets/", "runs/", "astronaut.png", "drawing.png", "boot.png", "song.wav", "ffhq.pkl")


def runnable_here(command: Command) -> bool:
    """A ganstudio-train line whose inputs the scratch folder has or an earlier line makes."""
    argv = trainer_argv(command_tokens(command.text))
    return argv is not None and all(p.startswith(SCRATCH_INPUTS) for p in needed_inputs(argv))


BLOCKS = sorted({(c.page, c.block) for c in ALL if c.fenced and runnable_here(c)})


def run_line(argv: list[str], cwd: Path, tool: str = "trainer") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
    start = ["-m", "trainer"] if tool == "trainer" else \
        ["-c", "import sys; from ganstudio.app import main; sys.exit(main(sys.argv[1:]))"]
    return subprocess.run([sys.executable, *start, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("page,block", BLOCKS, ids=[f"{p}:block{b}" for p, b in BLOCKS])
def test_documented_commands_run(page, block, tmp_path, shared_assets):
    scratch_folder(tmp_path, shared_assets)
    ran = 0
    for command in (c for c in ALL if c.page == page and c.block == block):
        tokens = command_tokens(command.text)
        argv = trainer_argv(tokens)
        if argv is None or any(not (tmp_path / p).exists() for p in needed_inputs(argv)):
            continue   # its options were checked; its input exists only on the reader's machine
        result = run_line(tiny_argv(argv, tmp_path), tmp_path)
        assert result.returncode == 0, f"{command.where}\nexit {result.returncode}\n{result.stderr[-3000:]}"
        ran += 1
    assert ran, f"{page}: no command of block {block} could run here"


@pytest.mark.slow
def test_documented_screenshot_runs(tmp_path, shared_assets):
    """The studio.md line that saves a screenshot, for real (offscreen)."""
    scratch_folder(tmp_path, shared_assets)
    line = next(c for c in ALL if c.page == "docs/studio.md" and c.fenced and "--screenshot" in c.text)
    tokens = command_tokens(line.text)
    result = run_line([*tokens[1:], "--threads", "1"], tmp_path, tool="ganstudio")
    assert result.returncode == 0, f"{line.where}\n{result.stderr[-3000:]}"
    shot = tmp_path / tokens[tokens.index("--screenshot") + 1]
    assert shot.stat().st_size > 1000


def test_readme_python_snippet_runs():
    """The README's 'In Python' block, as a reader would paste it in the project's folder."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "load_generator" in b)
    code = block + "\nassert img.shape[0] == z.shape[0] and img.shape[1:] == (G.img_channels, G.img_resolution, " \
                   "G.img_resolution)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
