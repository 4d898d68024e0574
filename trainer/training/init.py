"""Starting a new run from a model's weights (--init) and freezing D's first layers (--freeze-d).

A source is an NVlabs network pickle (read as data by trainer.importers, nothing in it is run),
a .safetensors exported here, or a run directory (its resume state). It decides the new run's
architecture unless options say otherwise (`new_run_config`); its tensors are then copied into
the new G, G_ema and D by name where the shapes match and the rest keep their fresh
initialisation (NVlabs' rule; `start_from`). A source that leaves every weight tensor of G outside
its mapping network fresh is refused: that would be a from-scratch run under another name."""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from trainer.checkpoint import CheckpointError, load_discriminator, load_generator, load_state
from trainer.config import ConfigError, ModelConfig, RunConfig, merge
from trainer.models import build_discriminator, build_generator
from trainer.models.stylegan3 import ARCH_R
from trainer.training.presets import PRESETS, preset_config

NETS = ("G", "G_ema", "D")
# The model fields a new run's data decides (set in gan.resolve_config), never taken from a source
DATA_DECIDED = ("img_resolution", "img_channels", "c_dim", "magnitude_ema_beta", "cfg")
SHOWN = 3   # names listed per reason in the log
UNCONDITIONAL_PRESET = {"stylegan2-cond": "stylegan2", "cgan": "dcgan"}   # a conditional source on unlabelled data


@dataclass
class InitSource:
    path: Path
    kind: str                          # "NVlabs pickle", "checkpoint" or "run directory"
    model: dict                        # ModelConfig fields the source decides
    data: dict                         # resolution, channels, conditional
    preset: str                        # the preset a new run takes when none is given
    c_dim: int                         # the source's class count (0: unconditional)
    tensors: dict = field(default_factory=dict)   # "G", "G_ema", "D" -> {name: tensor}; absent: not in the source
    notes: list = field(default_factory=list)     # what the log should add (e.g. why D is not taken)


# ---- reading a source --------------------------------------------------------------------------
def read_source(path) -> InitSource:
    """An --init path -> InitSource, or ConfigError saying why it cannot start a run. The last source
    read is kept while its file is unchanged: checking a run's options and starting it read it once."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"--init {path}: no such file or run directory")
    read = path / "state" / "last.pt" if path.is_dir() else path
    stat = read.stat() if read.is_file() else None   # none: _read_once says why
    return _read_once(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@functools.lru_cache(maxsize=1)
def _read_once(path: Path, mtime_ns: int, size: int) -> InitSource:
    try:
        if path.is_dir():
            return _from_run(path)
        if path.suffix.lower() == ".pkl":
            return _from_pickle(path)
        return _from_checkpoint(path)
    except CheckpointError as exc:   # the importers' and loaders' messages name the file and the reason
        raise ConfigError(f"--init: {exc}") from None


def _from_run(run_dir: Path) -> InitSource:
    state = load_state(run_dir / "state" / "last.pt")
    cfg = RunConfig.from_json(state["config"])
    if cfg.task != "gan":
        raise ConfigError(f"--init {run_dir}: a {cfg.task} run; --init starts latent GANs")
    return InitSource(run_dir, "run directory", *_run_shape(cfg),
                      tensors={name: state[name] for name in NETS if name in state})


def _run_shape(cfg: RunConfig) -> tuple[dict, dict, str, int]:
    m = cfg.model
    data = {"conditional": bool(m.c_dim)}
    if m.arch != "mlp":
        data.update(resolution=m.img_resolution, channels=m.img_channels)
    model = {k: v for k, v in m.to_dict().items() if k not in DATA_DECIDED}
    return model, data, cfg.preset or _preset_for(m), m.c_dim


def _from_pickle(path: Path) -> InitSource:
    from trainer.importers.nvlabs_pkl import convert_snapshot
    from trainer.importers.unpickler import read_network_pickle
    snapshot = read_network_pickle(path)
    G_ema, D, metadata = convert_snapshot(snapshot, path.name, include_discriminator="D" in snapshot)
    tensors = {"G_ema": G_ema.state_dict(), **({"D": D.state_dict()} if D is not None else {})}
    if isinstance(snapshot, dict) and "G" in snapshot and "G_ema" in snapshot:   # the training G, as data too
        tensors["G"] = convert_snapshot({"G": snapshot["G"]}, path.name)[0].state_dict()
    source = _from_metadata(path, "NVlabs pickle", json.loads(metadata["config"]), metadata, tensors)
    if D is None:
        source.notes.append("the pickle holds no D")
    return source


def _from_checkpoint(path: Path) -> InitSource:
    G_ema = load_generator(path)
    metadata = G_ema.checkpoint_info["metadata"]
    tensors = {"G_ema": G_ema.state_dict()}
    source = _from_metadata(path, "checkpoint", G_ema.checkpoint_info["config"], metadata, tensors)
    if "discriminator_config" in metadata:
        tensors["D"] = load_discriminator(path).state_dict()
        return source
    # A checkpoint in a run directory: the run's G and D where its resume state is of this very step
    run_dir, state_file = path.parent.parent, path.parent.parent / "state" / "last.pt"
    if path.parent.name == "checkpoints" and state_file.is_file():
        state = load_state(state_file)
        if state.get("last_checkpoint") == f"checkpoints/{path.name}":
            tensors.update({name: state[name] for name in ("G", "D") if name in state})
            source.preset = _run_shape(RunConfig.from_json(state["config"]))[2]
        else:
            source.notes.append(f"D starts fresh: the resume state of {run_dir.name} is of a later step "
                                f"({state.get('last_checkpoint')}; --init the run directory to take it)")
    else:
        source.notes.append("the checkpoint holds no D")
    return source


def _from_metadata(path: Path, kind: str, g: dict, metadata: dict, tensors: dict) -> InitSource:
    """A generator config `g` as a checkpoint stores it (the run's ModelConfig, or an NVlabs-exact
    arch's own config) -> the source's model and data settings."""
    if "width" in g:   # a ModelConfig, as the run had it (dcgan, mlp, the compact StyleGAN2)
        return InitSource(path, kind, *_run_shape(RunConfig(model=ModelConfig.from_dict(g))), tensors=tensors)
    arch = g["arch"]
    scale = 2 if arch == ARCH_R else 1   # stylegan3-r doubles the run's widths (models.stylegan_family)
    model = {"arch": arch, "z_dim": g["z_dim"], "w_dim": g["w_dim"], "mapping_layers": g["mapping_layers"],
             "channel_base": g["channel_base"] // scale, "channel_max": g["channel_max"] // scale}
    if "discriminator_config" in metadata:
        d = json.loads(metadata["discriminator_config"])
        if d.get("mbstd_group_size", 0) > 0 and d.get("mbstd_num_channels", 1) > 0:
            model["mbstd_group"] = d["mbstd_group_size"]
    data = {"resolution": g["img_resolution"], "channels": g["img_channels"], "conditional": bool(g["c_dim"])}
    return InitSource(path, kind, model, data, _preset_for(ModelConfig(arch=arch, c_dim=g["c_dim"])), g["c_dim"],
                      tensors=tensors)


def _preset_for(m: ModelConfig) -> str:
    conditional = {"stylegan2": "stylegan2-cond", "dcgan": "cgan"}
    name = conditional.get(m.arch, m.arch) if m.c_dim else m.arch
    return name if name in PRESETS else {"mlp": "toy-gan"}.get(m.arch, "stylegan2")


# ---- the new run's config ---------------------------------------------------------------------------
def new_run_config(init: str, preset: str | None = None, base: dict | None = None,
                   given: dict | None = None, notes: list | None = None) -> RunConfig:
    """The config of a run that starts from `init`: the preset's (`preset`, else the source's) or
    `base` (a --config file's dict), then the source's architecture, then `given`, the options
    given ({section: {field: value}}), which win. ConfigError when the source cannot start it.
    What the user should know about the choices made is appended to `notes`."""
    source = read_source(init)
    given = merge(given or {}, {"train": {"init": str(source.path.resolve())}})
    sections = merge({"model": source.model, "data": source.data}, given)
    preset = preset or source.preset
    chosen = "conditional" in given.get("data", {}) or "conditional" in (base or {}).get("data", {})
    if source.c_dim and not chosen:
        # A conditional source fine-tuned on a folder of unsorted pictures: the run is unconditional,
        # as the pictures are, rather than refused for lacking classes nobody asked for.
        from trainer.data.datasets import class_count
        data_source = sections["data"].get("source") or (base or {}).get("data", {}).get("source", "")
        count = class_count(data_source) if data_source else None
        if count is not None and count < 2:
            sections = merge(sections, {"data": {"conditional": False}})
            # the run's name follows what it trains (the studio's New run form passes the source's own preset)
            preset = UNCONDITIONAL_PRESET.get(preset, preset)
            if notes is not None:
                notes.append(f"{source.path.name} is conditional ({source.c_dim} classes) and '{data_source}' "
                             f"has no classes, so this run is unconditional: the layers that read the label start "
                             f"fresh, as the log lists (for classes, put each class's pictures in a sub-folder "
                             f"and give --conditional)")
    if base is not None:
        cfg = RunConfig.from_dict(merge(base, sections))
    else:
        cfg = preset_config(preset, **sections)
    check_init(cfg, source)
    return cfg


def check_init(cfg: RunConfig, source: InitSource | None = None) -> str:
    """Match the source against the models `cfg` builds (on the meta device, the data's class count
    taken as the source's) -> the log text; ConfigError when no weight of G's image-making part fits."""
    source = source or read_source(cfg.train.init)
    m = dataclasses.replace(cfg.model)
    m.img_resolution, m.img_channels = ((cfg.data.resolution, cfg.data.channels or source.data.get("channels", 3))
                                        if m.arch != "mlp" else (0, 2))
    m.c_dim = source.c_dim if cfg.data.conditional else 0
    with torch.device("meta"):
        G, D = build_generator(m), build_discriminator(m)
    return _report(source, {"G": G, "G_ema": G, "D": D})


# ---- copying ---------------------------------------------------------------------------------------
@dataclass
class Match:
    copied: list
    reshaped: list      # (name, source shape, shape here)
    missing: list       # here, not in the source
    unused: list        # in the source, not here


def match(target: nn.Module, tensors: dict) -> Match:
    """Which of target's tensors (parameters and buffers) the source's `tensors` can fill."""
    here = target.state_dict()
    copied = [n for n in here if n in tensors and tensors[n].shape == here[n].shape]
    reshaped = [(n, tuple(tensors[n].shape), tuple(here[n].shape)) for n in here
                if n in tensors and tensors[n].shape != here[n].shape]
    return Match(copied, reshaped, [n for n in here if n not in tensors], [n for n in tensors if n not in here])


def _source_of(source: InitSource, net: str) -> tuple[dict | None, str]:
    """The tensors net starts from and where they come from: G and G_ema stand in for each other."""
    t = source.tensors
    if net in t:
        return t[net], ""
    other = {"G": "G_ema", "G_ema": "G"}.get(net)
    return (t[other], f" (from the source's {other})") if other in t else (None, "")


def _report(source: InitSource, nets: dict) -> str:
    """The log text of copying `source` into nets; ConfigError when no weight of G outside its
    mapping network would be copied."""
    parts = []
    for net, module in nets.items():
        tensors, origin = _source_of(source, net)
        if tensors is None:
            parts.append(f"{net} starts fresh ({'; '.join(source.notes) or 'not in the source'})")
            continue
        found = match(module, tensors)
        if net == "G":
            # weights, not scalars (noise strengths) or biases, which fit whatever the widths
            weights = {n for n, p in module.named_parameters() if not n.startswith("mapping.") and p.dim() >= 2}
            if not weights & set(found.copied):
                raise ConfigError(_nothing_fits(source, found))
        total = len(module.state_dict())
        text = f"{net} {len(found.copied)} of {total} tensors copied{origin}"
        fresh = []
        if found.reshaped:
            fresh.append(f"{len(found.reshaped)} of another shape: " + _names(
                [f"{n} {list(a)} -> {list(b)}" for n, a, b in found.reshaped]))
        if found.missing:
            fresh.append(f"{len(found.missing)} not in the source: " + _names(found.missing))
        if fresh:
            text += "; kept fresh: " + "; ".join(fresh)
        if found.unused:
            text += f"; {len(found.unused)} source tensors unused: " + _names(found.unused)
        parts.append(text)
    return f"initialised from {source.path} ({source.kind}): " + ". ".join(parts)


def _names(names: list) -> str:
    return ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")


def _nothing_fits(source: InitSource, found: Match) -> str:
    shown = f" (e.g. {_names([f'{n} {list(a)} here {list(b)}' for n, a, b in found.reshaped])})" \
        if found.reshaped else ""
    return (f"--init {source.path}: none of G's weight tensors outside its mapping network fits this run's model"
            f"{shown}, so it would start from scratch. The source is {source.model.get('arch')} "
            f"{source.data.get('resolution', '')} px: leave --resolution, --channel-base, --channel-max and the "
            "widths to the source, or start without --init")


def start_from(source_path: str, nets: dict, log=print) -> str:
    """Copy the source's tensors into nets ({"G": G, "G_ema": G_ema, "D": D}, in place, so wrappers
    and optimisers keep their tensors) -> the log text (also given to `log`)."""
    source = read_source(source_path)
    text = _report(source, nets)
    with torch.no_grad():
        for net, module in nets.items():
            tensors, _ = _source_of(source, net)
            if tensors is None:
                continue
            here = {**dict(module.named_parameters()), **dict(module.named_buffers())}
            for name in match(module, tensors).copied:
                here[name].copy_(tensors[name])
    _read_once.cache_clear()   # the run holds the weights now
    log(text)
    return text


# ---- freeze-D ----------------------------------------------------------------------------------------
def freeze_layers(D: nn.Module, count: int) -> list[str]:
    """Keep D's first `count` layers from its input side at their starting weights: their parameters
    become buffers (as NVlabs holds its non-trainable layers), so no optimiser, gradient or
    requires_grad_() reaches them, and the state dict keeps their names. -> the frozen names.

    A layer of the StyleGAN Ds (NVlabs' and the compact one) is a resolution block (fromrgb, conv0,
    conv1, skip), from the highest resolution down; the 4x4 epilogue always learns. NVlabs' --freezed
    counts the convolutions instead (4 in the first block, 3 in each next), so --freeze-d N is its
    --freezed 3N+1. In the other Ds a layer is a convolution or linear layer with what follows it up
    to the next (its bias, its normalisation); the output layer always learns. Label embeddings are
    never counted."""
    if count <= 0:
        return []
    blocks = [m for m in D.modules() if type(m).__name__ == "DiscriminatorBlock"]
    if blocks:
        units = [[p for p in block.parameters()] for block in blocks]
    else:
        params = [p for n, p in D.named_parameters() if not _is_label_part(n)]
        starts = [i for i, p in enumerate(params) if p.dim() >= 2][:-1]   # the output layer always learns
        units = [params[a:b] for a, b in zip(starts, starts[1:] + [max(i for i, p in enumerate(params)
                                                                        if p.dim() >= 2)])]
    if count > len(units):
        raise ConfigError(f"--freeze-d {count}: this discriminator has {len(units)} layers that can be frozen "
                          f"({'resolution blocks' if blocks else 'convolution or linear layers before its output'})")
    frozen_ids = {id(p) for unit in units[:count] for p in unit}
    frozen = [n for n, p in D.named_parameters() if id(p) in frozen_ids]
    for name in frozen:
        owner_name, _, attr = name.rpartition(".")
        owner = D.get_submodule(owner_name)
        owner.register_buffer(attr, owner._parameters.pop(attr).detach().requires_grad_(False))
    return frozen


def _is_label_part(name: str) -> bool:
    return any(part in ("mapping", "embed") for part in name.split("."))
