"""Import rosinality stylegan2-pytorch checkpoints (`.pt` files with a `g_ema` state dict) into the
NVlabs-exact architecture.

The file is read with torch.load(weights_only=True): tensors and plain values only (plus
argparse.Namespace, which rosinality's train.py stores as `args`); anything else is refused by
torch before it is built. rosinality's generator computes what NVlabs' does, layer for layer:
the same equalised-lr mapping (PixelNorm, `n_mlp` layers, lr multiplier 0.01), modulated 3x3
convolutions with demodulation (rosinality folds the 1/sqrt(fan-in) weight scale in before
demodulating, which moves the 1e-8 epsilon by a constant factor: a relative difference near
1e-9), transposed-convolution upsampling followed by the [1, 3, 3, 1] blur, noise before the
biased leaky ReLU, and skip toRGBs upsampled by the same filter. Names map one to one:

  style.{k}.weight/bias              -> mapping.fc{k-1}.weight/bias
  input.input [1, C, 4, 4]           -> synthesis.b4.const [C, 4, 4]
  conv1 / to_rgb1                    -> synthesis.b4.conv1 / synthesis.b4.torgb
  convs.{2j} / convs.{2j+1}          -> synthesis.b{2^(j+3)}.conv0 / .conv1
  to_rgbs.{j}                        -> synthesis.b{2^(j+3)}.torgb
  *.conv.weight [1, O, I, k, k]      -> *.weight [O, I, k, k]
  *.conv.modulation.weight/bias      -> *.affine.weight/bias
  *.noise.weight [1]                 -> *.noise_strength []
  *.activate.bias / to_rgb bias      -> *.bias
  noises.noise_{i} [1, 1, r, r]      -> the layer's noise_const [r, r]
`latent_avg` (stored by rosinality's convert_weight.py) becomes w_avg; without it, w_avg is the
mean of 4096 mapped z (seed 0), as rosinality's mean_latent computes it, and the metadata says so.
The mapping's learning-rate multiplier is not stored in these files; rosinality's default (0.01)
is assumed and recorded.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import re
from pathlib import Path

import torch

from trainer.checkpoint import FORMAT, FORMAT_VERSION, tensors_sha256, write_safetensors
from trainer.config import ConfigError
from trainer.models.stylegan2_nvlabs import ARCH_NAME, NVlabsGenerator, NVlabsGeneratorConfig
from trainer.importers import NetworkImportError
from trainer.files import file_sha256
from trainer.importers.nvlabs_pkl import _load_exactly

ROSINALITY_LR_MLP = 0.01
W_AVG_SAMPLES = 4096
BLUR_TAPS = [1.0, 3.0, 3.0, 1.0]


def read_rosinality_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NetworkImportError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK":
        raise NetworkImportError(f"{path.name} is not a torch.save zip archive; rosinality checkpoints are "
                                 "(for NVlabs network pickles use --from nvlabs)")
    try:
        allow = getattr(torch.serialization, "safe_globals", None)   # torch >= 2.5
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetworkImportError(f"{path.name} could not be read as tensors and plain values (weights_only=True): "
                                 f"{first}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        keys = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise NetworkImportError(f"{path.name} holds {keys}, not a rosinality stylegan2-pytorch checkpoint "
                                 "(a dict with a 'g_ema' state dict)")
    return ckpt


def _tensor(sd: dict, name: str) -> torch.Tensor:
    value = sd.get(name)
    if not isinstance(value, torch.Tensor):
        raise NetworkImportError(f"g_ema has no tensor {name}")
    return value


def _channel_settings(channels: dict[int, int]) -> tuple[int, int]:
    """Feature maps per resolution -> NVlabs' (channel_base, channel_max), checked exactly."""
    channel_max = max(channels.values())
    below = [c * r for r, c in channels.items() if c < channel_max]
    channel_base = below[0] if below else channel_max * max(channels)
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise NetworkImportError(f"its feature maps per resolution {dict(sorted(channels.items()))} do not follow "
                                 "min(channel_base / r, channel_max), which this importer reproduces")
    return channel_base, channel_max


def rosinality_generator(ckpt: dict) -> tuple[NVlabsGenerator, dict]:
    """Checkpoint dict -> (NVlabs-exact generator with its weights, notes for the metadata)."""
    sd = ckpt["g_ema"]
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    num_rgbs = len([k for k in sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
    if not n_mlp or "input.input" not in sd:
        raise NetworkImportError("g_ema is not a rosinality StyleGAN2 generator (no style.* mapping layers or input.input)")
    resolution = 2 ** (num_rgbs + 2)
    z_dim = _tensor(sd, "style.1.weight").shape[1]          # rosinality: z_dim = w_dim = style_dim;
    layer_features = _tensor(sd, "style.1.weight").shape[0]  # read separately all the same
    style_dim = _tensor(sd, f"style.{n_mlp}.weight").shape[0]
    channels = {4: _tensor(sd, "conv1.conv.weight").shape[1]}
    for j in range(num_rgbs):
        channels[2 ** (j + 3)] = _tensor(sd, f"convs.{2 * j}.conv.weight").shape[1]
    channel_base, channel_max = _channel_settings(channels)
    try:
        cfg = NVlabsGeneratorConfig.from_dict({
            "z_dim": z_dim, "c_dim": 0, "w_dim": style_dim, "img_resolution": resolution,
            "img_channels": _tensor(sd, "to_rgb1.conv.weight").shape[1], "mapping_layers": n_mlp,
            "embed_features": 0, "layer_features": layer_features, "mapping_lr_multiplier": ROSINALITY_LR_MLP,
            "channel_base": channel_base, "channel_max": channel_max, "conv_clamp": 0.0,
            "resample_filter": BLUR_TAPS})
    except ConfigError as exc:
        raise NetworkImportError(f"its settings are out of range: {exc}") from None
    G = NVlabsGenerator(cfg)
    mapped, used = {}, set()

    def take(src: str, dst: str, shape=None):
        t = _tensor(sd, src)
        mapped[dst] = t.reshape(shape) if shape is not None else t
        used.add(src)

    for k in range(1, n_mlp + 1):
        take(f"style.{k}.weight", f"mapping.fc{k - 1}.weight")
        take(f"style.{k}.bias", f"mapping.fc{k - 1}.bias")
    take("input.input", "synthesis.b4.const", _tensor(sd, "input.input").shape[1:])
    layers = [("conv1", "synthesis.b4.conv1", 0)]
    for j in range(num_rgbs):
        res = 2 ** (j + 3)
        layers += [(f"convs.{2 * j}", f"synthesis.b{res}.conv0", 2 * j + 1),
                   (f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", 2 * j + 2)]
    for src, dst, noise_index in layers:
        w = _tensor(sd, f"{src}.conv.weight")
        take(f"{src}.conv.weight", f"{dst}.weight", w.shape[1:])
        take(f"{src}.conv.modulation.weight", f"{dst}.affine.weight")
        take(f"{src}.conv.modulation.bias", f"{dst}.affine.bias")
        take(f"{src}.noise.weight", f"{dst}.noise_strength", [])
        take(f"{src}.activate.bias", f"{dst}.bias")
        noise = _tensor(sd, f"noises.noise_{noise_index}")
        take(f"noises.noise_{noise_index}", f"{dst}.noise_const", noise.shape[-2:])
    for src, dst in [("to_rgb1", "synthesis.b4.torgb")] + [(f"to_rgbs.{j}", f"synthesis.b{2 ** (j + 3)}.torgb")
                                                           for j in range(num_rgbs)]:
        w = _tensor(sd, f"{src}.conv.weight")
        take(f"{src}.conv.weight", f"{dst}.weight", w.shape[1:])
        take(f"{src}.conv.modulation.weight", f"{dst}.affine.weight")
        take(f"{src}.conv.modulation.bias", f"{dst}.affine.bias")
        take(f"{src}.bias", f"{dst}.bias", [-1])
    blur = torch.outer(torch.tensor(BLUR_TAPS), torch.tensor(BLUR_TAPS))
    blur = blur / blur.sum() * 4           # rosinality stores its up-sampling blur with the gain of 4
    for name in [k for k in sd if k.endswith(("blur.kernel", "upsample.kernel"))]:
        if not torch.allclose(sd[name].float(), blur, atol=1e-6):
            raise NetworkImportError(f"g_ema's {name} is not the [1, 3, 3, 1] blur this importer reproduces")
        used.add(name)
    leftover = sorted(set(sd) - used)
    if leftover:
        raise NetworkImportError(f"g_ema has tensors this importer cannot place: {', '.join(leftover[:5])}"
                                 f"{' ...' if len(leftover) > 5 else ''}")
    state = G.state_dict()
    for name, tensor in state.items():     # constant buffers rosinality does not store
        if name.endswith("resample_filter"):
            mapped[name] = tensor
    latent_avg = ckpt.get("latent_avg")
    notes = {"mapping_lr_multiplier": f"{ROSINALITY_LR_MLP} (rosinality's default; not stored in the file)"}
    has_avg = isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == style_dim
    if has_avg:
        mapped["mapping.w_avg"] = latent_avg.reshape(style_dim)
        notes["w_avg"] = "latent_avg from the file"
    else:
        mapped["mapping.w_avg"] = torch.zeros(style_dim)
        notes["w_avg"] = f"mean of {W_AVG_SAMPLES} mapped z (seed 0): the file stores no latent_avg"
    _load_exactly(G, mapped, "generator")
    if not has_avg:
        with torch.no_grad():
            z = torch.randn(W_AVG_SAMPLES, z_dim, generator=torch.Generator().manual_seed(0))
            G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(dim=0))
    return G.eval(), notes


def import_rosinality(path, out, progress=None) -> dict:
    """rosinality .pt -> GAN Studio checkpoint at `out` (atomic; nothing written on refusal)."""
    progress = progress or (lambda fraction, message: None)
    path = Path(path)
    progress(0.05, f"hashing {path.name}")
    sha = file_sha256(path) if path.is_file() else ""
    progress(0.2, f"reading {path.name} (weights_only)")
    ckpt = read_rosinality_checkpoint(path)
    try:
        G, notes = rosinality_generator(ckpt)
    except NetworkImportError as exc:
        raise NetworkImportError(f"{path.name}: {exc}") from None
    size = ckpt["args"].size if isinstance(ckpt.get("args"), argparse.Namespace) and hasattr(ckpt["args"], "size") else None
    if size is not None and size != G.img_resolution:
        raise NetworkImportError(f"{path.name}: its args say size {size}, its layers {G.img_resolution}")
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": ARCH_NAME,
        "config": json.dumps(G.cfg.to_dict(), sort_keys=True), "step": "0", "kimg": "0.0000",
        "dataset": json.dumps({"name": path.stem, "resolution": G.img_resolution, "class_names": []}, sort_keys=True),
        "source": "rosinality-pt", "source_file": path.name, "source_sha256": sha, "source_network": "g_ema",
        "kept": "g_ema", "notes": json.dumps(notes, sort_keys=True), "precision": "float32",
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    progress(0.9, f"writing {Path(out).name}")
    metadata["tensors_sha256"] = tensors_sha256(tensors)   # loading verifies it
    write_safetensors(out, tensors, metadata)
    progress(1.0, "imported")
    return {"out": str(out), "arch": ARCH_NAME, "resolution": G.img_resolution, "c_dim": 0, "num_ws": G.num_ws,
            "kept": "g_ema", "source_sha256": sha, "params": sum(t.numel() for t in G.parameters()),
            "w_avg": notes["w_avg"]}
