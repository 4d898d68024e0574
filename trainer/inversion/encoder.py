"""An encoder that predicts a photo's W+ latent, as a start for inversion.

A small convolutional network: image [N, C, R, R] in [-1, 1] -> W+ [N, num_ws, w_dim], predicted
as offsets from the generator's w_avg in units of W's per-dimension spread. It is trained on the
generator's own samples (trainer/encoder_train.py, `ganstudio-train encoder --checkpoint C`) and
stored as a plain-tensor safetensors file whose metadata names the generator checkpoint's sha256
and the encoder's config, so it is only ever used with the checkpoint it was trained for.

Where an encoder for a checkpoint is looked for (`find_encoder`): an explicit path, else
`<checkpoint folder>/encoders/<checkpoint stem>.safetensors`, else any file in that `encoders/`
folder whose metadata names the checkpoint's sha256. The sub-folder keeps encoders out of the
`*.safetensors` globs that list a run's checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from trainer.files import parse_json

FORMAT = "ganstudio.encoder"
FORMAT_VERSION = 1
ENCODERS_FOLDER = "encoders"
SMALLEST_FEATURE_MAP = 4          # downsample until the feature maps are this many pixels across


class EncoderError(ValueError):
    """An encoder file that cannot be used with this generator; the message says why."""


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's shape: what it reads and writes, and how wide it is."""
    img_resolution: int           # pixels across the (square) input, the generator's resolution
    img_channels: int             # 1 (grey) or 3 (RGB)
    num_ws: int                   # layers of the W+ it predicts
    w_dim: int                    # dimensions of each layer's w
    width: int = 32               # feature maps of the first convolution; doubled at each downsampling
    max_width: int = 128          # cap on feature maps
    hidden: int = 256             # units of the fully connected layer before the W+ head

    def __post_init__(self):
        for name in ("img_resolution", "img_channels", "num_ws", "w_dim", "width", "max_width", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise EncoderError(f"encoder config: {name} {value!r} must be a positive integer")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "EncoderConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EncoderError(f"encoder config: unknown key(s) {', '.join(unknown)}")
        return cls(**d)


class LatentEncoder(nn.Module):
    """image [N, C, R, R] in [-1, 1] -> W+ [N, num_ws, w_dim] = w_avg + w_spread * offsets."""

    def __init__(self,
                 config: EncoderConfig,
                 w_avg: torch.Tensor,       # [w_dim] the generator's mean w: the prediction for "no idea"
                 w_spread: torch.Tensor,    # [w_dim] std of each w dimension: the unit of the offsets
                 ):
        super().__init__()
        self.config = config
        if w_avg.shape != (config.w_dim,) or w_spread.shape != (config.w_dim,):
            raise EncoderError(f"w_avg {tuple(w_avg.shape)} and w_spread {tuple(w_spread.shape)} must be [{config.w_dim}]")
        self.register_buffer("w_avg", w_avg.detach().float().clone())
        self.register_buffer("w_spread", w_spread.detach().float().clone())
        layers: list[nn.Module] = [nn.Conv2d(config.img_channels, config.width, 3, padding=1), nn.LeakyReLU(0.2)]
        channels, resolution = config.width, config.img_resolution
        while resolution > SMALLEST_FEATURE_MAP:
            out = min(channels * 2, config.max_width)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(out, out, 3, padding=1), nn.LeakyReLU(0.2)]
            channels, resolution = out, (resolution + 1) // 2
        self.features = nn.Sequential(*layers)
        self.feature_shape = (channels, resolution, resolution)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(channels * resolution * resolution, config.hidden),
                                    nn.LeakyReLU(0.2))
        self.head = nn.Linear(config.hidden, config.num_ws * config.w_dim)
        nn.init.zeros_(self.head.weight)   # an untrained encoder predicts w_avg, the usual start
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        if images.ndim != 4 or images.shape[1:] != (c.img_channels, c.img_resolution, c.img_resolution):
            raise EncoderError(f"the encoder reads [N, {c.img_channels}, {c.img_resolution}, {c.img_resolution}], "
                               f"got {tuple(images.shape)}")
        features = self.features(images)                         # [N, F, r, r]
        assert features.shape[1:] == self.feature_shape, features.shape
        offsets = self.head(self.hidden(features)).view(-1, c.num_ws, c.w_dim)   # [N, num_ws, w_dim]
        return self.w_avg + self.w_spread * offsets


def encoder_for_generator(G, width: int = 32, max_width: int = 128, hidden: int = 256) -> LatentEncoder:
    """An untrained encoder shaped for generator G (its resolution, channels, num_ws, w_dim, W statistics)."""
    if not getattr(G, "num_ws", 0):
        raise EncoderError("this model has no W space, so there is no W+ for an encoder to predict")
    config = EncoderConfig(img_resolution=G.img_resolution, img_channels=G.img_channels, num_ws=G.num_ws,
                           w_dim=G.w_dim, width=width, max_width=max_width, hidden=hidden)
    device = G.w_avg.device
    w_avg, w_spread = w_spread_statistics(G, device)
    return LatentEncoder(config, w_avg, w_spread).to(device)


@torch.no_grad()
def w_spread_statistics(G, device, samples: int = 2000, seed: int = 4321) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean w [w_dim], std of each w dimension [w_dim]) over `samples` mapped random z (all classes)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(samples, G.z_dim, generator=gen).to(device)
    c = torch.randint(0, G.c_dim, (samples,), generator=gen).to(device) if G.c_dim else None
    w = G.mapping(z, c)[:, 0].float()
    return w.mean(0), w.std(0).clamp_min(1e-6)


# ---- files ----
def save_encoder(path, encoder: LatentEncoder, checkpoint_path, training: Mapping) -> None:
    """Write the encoder as plain tensors; metadata: format, version, config, the generator
    checkpoint's path and sha256, and how it was trained (`training`, JSON-able)."""
    from trainer.files import file_sha256, write_safetensors
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in encoder.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "config": json.dumps(encoder.config.to_dict(), sort_keys=True),
                "generator_sha256": file_sha256(checkpoint_path),
                "generator_path": str(Path(checkpoint_path).resolve()),
                "training": json.dumps(dict(training), sort_keys=True)}
    write_safetensors(path, tensors, metadata)


def read_encoder_metadata(path) -> dict[str, str]:
    """The metadata of an encoder file (header only); EncoderError when it is not one."""
    from trainer.files import read_safetensors_metadata
    path = Path(path)
    try:
        meta = read_safetensors_metadata(path)
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot read encoder {path.name}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise EncoderError(f"{path.name} is not a GAN Studio encoder (format {meta.get('format')!r})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise EncoderError(f"{path.name} is encoder format version {meta.get('format_version')!r}; "
                           f"this version of GAN Studio reads version {FORMAT_VERSION}")
    return meta


def load_encoder(path, checkpoint_sha256: str | None = None, device="cpu") -> LatentEncoder:
    """Open an encoder file -> LatentEncoder in eval mode (with `.metadata`). With checkpoint_sha256,
    refuse (EncoderError, saying so) an encoder trained for another generator checkpoint."""
    from safetensors.torch import load_file
    path = Path(path)
    meta = read_encoder_metadata(path)
    if checkpoint_sha256 is not None and meta.get("generator_sha256") != checkpoint_sha256:
        raise EncoderError(mismatch_message(path, meta, checkpoint_sha256))
    try:
        config = EncoderConfig.from_dict(parse_json(meta.get("config", ""), f"{path.name}'s config"))
    except (ValueError, TypeError) as exc:
        raise EncoderError(f"{path.name} has an unusable encoder config: {exc}") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:   # safetensors' own error type for a damaged file; OSError for an unreadable one
        raise EncoderError(f"cannot read encoder {path.name}: {exc}") from None
    for name in ("w_avg", "w_spread"):
        if name not in tensors:
            raise EncoderError(f"{path.name} lacks the tensor {name!r}")
    encoder = LatentEncoder(config, tensors["w_avg"], tensors["w_spread"])
    try:
        encoder.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise EncoderError(f"{path.name}: its tensors do not fit its config: {str(exc).splitlines()[0]}") from None
    encoder.metadata = meta
    return encoder.eval().requires_grad_(False).to(device)


def default_encoder_path(checkpoint_path) -> Path:
    """Where `ganstudio-train encoder` writes, and inversion first looks: <folder>/encoders/<stem>.safetensors."""
    checkpoint_path = Path(checkpoint_path)
    return checkpoint_path.parent / ENCODERS_FOLDER / f"{checkpoint_path.stem}.safetensors"


def find_encoder(checkpoint_path, explicit: str = "") -> tuple[Path | None, str]:
    """The encoder to start inversions of `checkpoint_path` from -> (path or None, a note for the
    user: "" when an encoder was found, or when there is none at all; else why one was not used)."""
    from trainer.files import file_sha256
    if not checkpoint_path or not Path(checkpoint_path).is_file():
        return None, ("" if not explicit else "the model has no checkpoint file to match an encoder against")
    sha = file_sha256(checkpoint_path)
    if explicit:
        try:
            check_encoder_file(explicit, sha)
        except EncoderError as exc:
            return None, str(exc)
        return Path(explicit), ""
    named = default_encoder_path(checkpoint_path)
    refusals = []
    others = sorted(p for p in named.parent.glob("*.safetensors") if p != named) if named.parent.is_dir() else []
    for candidate in ([named] if named.is_file() else []) + others:
        try:
            check_encoder_file(candidate, sha)
        except EncoderError as exc:
            if candidate == named:
                refusals.append(str(exc))
            continue
        return candidate, ""
    return None, "; ".join(refusals)


def check_encoder_file(path, checkpoint_sha256: str) -> None:
    """Raise EncoderError unless `path` is a readable encoder trained for the checkpoint with this sha256."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"encoder {path} does not exist")
    meta = read_encoder_metadata(path)
    if meta.get("generator_sha256") != checkpoint_sha256:
        raise EncoderError(mismatch_message(path, meta, checkpoint_sha256))


def mismatch_message(path: Path, meta: Mapping[str, str], checkpoint_sha256: str) -> str:
    return (f"encoder {path.name} was trained for another checkpoint (sha256 {meta.get('generator_sha256', '')[:12]}..., "
            f"{Path(meta.get('generator_path', '?')).name}), not this one (sha256 {checkpoint_sha256[:12]}...), so "
            f"it is not used; train one for this checkpoint with `ganstudio-train encoder --checkpoint CHECKPOINT`")


# ---- as inversion's start ----
_LOADED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()   # G -> {file key: encoder}


def encoder_for_inversion(G,
                          required: bool,         # True: the user asked for an encoder (say so when there is none)
                          explicit: str,          # an encoder file the user named; "" = look beside the checkpoint
                          checkpoint_path: str,   # G's checkpoint file, whose sha256 the encoder must name
                          ) -> tuple[LatentEncoder | None, str]:
    """The encoder to start an inversion of G from -> (encoder or None, a note for the user or "").
    An encoder trained for another checkpoint, or for another shape, is refused with a note; the
    caller then starts from the best of random w."""
    fallback = "; starting from the best of random w instead"
    path, note = find_encoder(checkpoint_path, explicit)
    if path is None:
        if required and not note:
            note = "no encoder found for this checkpoint (train one with `ganstudio-train encoder --checkpoint CHECKPOINT`)"
        return None, note + (fallback if note else "")
    key = f"{Path(path).resolve()}:{Path(path).stat().st_mtime_ns}"
    store = _LOADED.setdefault(G, {})
    try:
        if key not in store:
            store[key] = load_encoder(path, device=G.w_avg.device)
    except EncoderError as exc:
        return None, f"{exc}{fallback}"
    encoder, c = store[key], store[key].config
    if (c.img_resolution, c.img_channels, c.num_ws, c.w_dim) != (G.img_resolution, G.img_channels, G.num_ws, G.w_dim):
        return None, f"encoder {Path(path).name} does not fit this model's shape{fallback}"
    return encoder, ""


@torch.no_grad()
def predicted_start(G,
                    encoder: LatentEncoder,              # trained for G
                    targets: torch.Tensor,               # [N, C, H, W] in [-1, 1]
                    classes: list[int | None] | None,    # per image: a class, or None (conditional models)
                    class_means: torch.Tensor | None,    # [c_dim, w_dim] class centres (conditional models)
                    ) -> tuple[torch.Tensor, list[int | None]]:
    """The encoder's W+ for each target -> (ws [N, num_ws, w_dim], per image the given class, or for
    conditional models the class whose mean w is nearest the prediction's mean over layers)."""
    ws = encoder(targets.float())
    n = targets.shape[0]
    classes = list(classes) if classes is not None else [None] * n
    if not G.c_dim or class_means is None:
        return ws, [None] * n if not G.c_dim else classes
    nearest = torch.cdist(ws.mean(1), class_means.float().to(ws.device)).argmin(1)
    return ws, [int(nearest[i]) if k is None else int(k) for i, k in enumerate(classes)]
