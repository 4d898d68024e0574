"""The New-run form's decisions, Qt-free: what a model to fine-tune from implies for the form (its
preset, its resolution, ADA and freeze-D), and the dataset tool as a job with progress and cancel.

A source is read for its metadata only (a run's config.json, a checkpoint's safetensors header): no
torch, no weights. An NVlabs pickle is named, not opened (opening one means unpickling it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .training_process import TrainerCommand

FINE_TUNE_AUGMENT = "ada"      # NVlabs' recommendation for small target sets, and the reason to fine-tune at all
UNKNOWN_RESOLUTION_FREEZE_D = 2


@dataclass(frozen=True)
class FineTuneSource:
    """What the form shows and fills when a model to start from is chosen."""
    path: str
    description: str               # one line for the form ("" when nothing is chosen)
    usable: bool                   # a run directory, a .safetensors checkpoint or an NVlabs .pkl
    preset: str | None = None      # the preset of the source's architecture (None: keep the form's)
    resolution: int = 0            # the source's, in pixels (0: not known without opening it)
    augment: str = ""              # the fine-tuning default for --augment
    freeze_d: int = 0              # the fine-tuning default for --freeze-d


def freeze_d_default(resolution: int) -> int:
    """Freeze-D's default: half of D's blocks from the input side (one block per resolution from the
    image's down to 8 px), the part Mo et al. froze; 2 when the resolution is not known."""
    if resolution < 8:
        return UNKNOWN_RESOLUTION_FREEZE_D
    return max(1, (int(math.log2(resolution)) - 2) // 2)


def _preset_for(arch: str, c_dim: int) -> str | None:
    """The plainest preset whose architecture and conditioning match a model's: the one named after the
    architecture, else the shortest name (dcgan; cgan for dcgan with classes; stylegan2-cond)."""
    from trainer.training.presets import PRESETS
    matching = [name for name, preset in sorted(PRESETS.items(), key=lambda item: (item[0] != arch, len(item[0]),
                                                                                    item[0]))
                if preset.get("model", {}).get("arch") == arch
                and bool(preset.get("data", {}).get("conditional", False)) == (c_dim > 0)]
    return matching[0] if matching else None


def describe_fine_tune_source(path: str) -> FineTuneSource:
    """A path the user picked -> what it is and the form's fine-tuning defaults for it."""
    import json
    from trainer.files import JSONFileError, read_json, read_safetensors_metadata
    text = path.strip()
    if not text:
        return FineTuneSource("", "", False)
    source = Path(text).expanduser()
    try:
        if source.is_dir() and (source / "config.json").is_file():
            config = read_json(source / "config.json")
            model, data = config.get("model", {}), config.get("data", {})
            resolution = int(model.get("img_resolution") or data.get("resolution") or 0)
            preset = config.get("preset")
            what = f"run {source.name}: {preset or model.get('arch', '?')}, {resolution} px"
        elif source.suffix == ".safetensors" and source.is_file():
            meta = read_safetensors_metadata(source)
            config = json.loads(meta.get("config", "{}"))
            resolution, c_dim = int(config.get("img_resolution", 0)), int(config.get("c_dim", 0))
            preset = _preset_for(meta.get("arch", config.get("arch", "")), c_dim)
            classes = f", {c_dim} classes" if c_dim else ""
            what = f"checkpoint {source.name}: {meta.get('arch', '?')}, {resolution} px{classes}, " \
                   f"{float(meta.get('kimg', 0)):g} kimg"
        elif source.suffix == ".pkl" and source.is_file():
            # a StyleGAN2(-ADA) or StyleGAN3 network: which, and its size, are read when the run unpickles it
            resolution, preset = 0, "stylegan2"
            what = f"NVlabs network pickle {source.name}: its architecture and size are read when the run starts"
        else:
            return FineTuneSource(text, "not a run directory, a .safetensors checkpoint or an NVlabs .pkl", False)
    except (OSError, ValueError, JSONFileError, AttributeError) as exc:
        return FineTuneSource(text, f"cannot read it: {exc}", False)
    return FineTuneSource(text, what, True, preset, resolution, FINE_TUNE_AUGMENT, freeze_d_default(resolution))


# ---------------------------------------------------------------------------------------------
# The dataset tool as a job

@dataclass(frozen=True)
class DatasetRequest:
    source: str              # a folder, a .zip or a video
    out: str                 # the zip to write (replaced if it exists: the save dialog asked)
    resolution: int = 256    # pixels, rounded to a power of two by the tool
    crop: str = "center"     # trainer.data.dataset_tool.CROPS
    channels: int = 3
    every: int = 1           # video: every Nth frame
    labels: bool = True      # classes from sub-folders

    def arguments(self) -> list[str]:
        """`ganstudio-train` arguments that run the tool."""
        args = ["dataset", str(Path(self.source).expanduser()), "--out", str(Path(self.out).expanduser()),
                "--resolution", str(self.resolution), "--crop", self.crop, "--channels", str(self.channels),
                "--every", str(self.every), "--force"]
        return args if self.labels else args + ["--no-labels"]


def default_dataset_path(source: str) -> str:
    """Where the made zip goes unless the user says: beside the source, named after it (photos/ ->
    photos.zip, clip.mp4 -> clip.zip, pictures.zip -> pictures-dataset.zip)."""
    path = Path(source).expanduser()
    name = path.name if path.is_dir() else path.stem
    suffix = "-dataset.zip" if path.suffix.lower() == ".zip" else ".zip"
    return str(path.parent / f"{name or 'dataset'}{suffix}")


TQDM_COUNT = re.compile(r"(\d+)(?:/(\d+))?(?:img)? \[")   # "12/40 [00:01<..." or, total unknown, "12img [00:01..."


@dataclass(frozen=True)
class DatasetNews:
    output: str = ""                # console text since the last poll
    done: int = 0                   # pictures looked at so far
    total: int | None = None        # how many there are (None: not known yet, or a video of unknown length)
    exit_code: int | None = None    # once it has ended: 0 made, 130 cancelled, else failed


class DatasetJob:
    """`ganstudio-train dataset ...` as a subprocess: progress from its bar, Cancel as SIGTERM (the tool then
    removes its unfinished zip, exit code 130)."""

    def __init__(self, request: DatasetRequest,
                 kill_after_s: float = 10.0):   # after cancel(), kill it if it has not gone by then
        self.request = request
        self.process = TrainerCommand(kill_after_s)
        self.process.name, self.process.stop_message = "dataset tool", "cancelling: the unfinished zip is removed"
        self.done, self.total = 0, None

    def start(self) -> None:
        self.process.start(self.request.arguments())

    def cancel(self) -> None:
        self.process.stop()

    def is_running(self) -> bool:
        return self.process.is_running()

    @property
    def succeeded(self) -> bool:
        return self.process.exit_code == 0

    def poll(self) -> DatasetNews:
        news = self.process.poll()
        counts = TQDM_COUNT.findall(news.output)
        if counts:
            done, total = counts[-1]
            self.done, self.total = int(done), int(total) if total else None
        return DatasetNews(news.output, self.done, self.total, news.exit_code)
