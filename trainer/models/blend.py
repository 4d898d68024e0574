"""Layer blending ("layer swapping") of two generators of one architecture.

A blend takes each synthesis layer from model A or model B by the resolution it works at: with a
swap at 16 px, the layers at 4-16 px (pose, shape, layout) come from A and those above (texture,
colour, fine detail) from B. Between the two, a per-resolution weight t(r) in [0, 1] interpolates
each tensor, (1 - t) * A + t * B:

  t(r) = mix * ramp(r),  ramp(r) = 0 for r <= swap_at and 1 above   (width 0: the hard swap)
                         ramp(r) = logistic((log2 r - log2 swap_at - 0.5) / width)   (width in octaves)

so mix 1 with width 0 is the swap, mix 0 is A, and swap_at 0 mixes every layer by `mix`. The
logistic is centred half an octave above swap_at, where the hard swap switches, as Justin
Pinkney's blend_models (resolution-dependent GAN interpolation) blends with a logistic of a width.
The mapping network and w_avg come whole from one parent: A by default, as blend_models clones its
low-resolution model; `mapping="b"` takes B's.

Resolutions: `stylegan2` blocks `synthesis.b<R>` work at R px and the compact model's
`synthesis.blocks.<k>` at 4 * 2^k px. StyleGAN3's layers are indexed, not named by resolution:
`synthesis.L<i>_<size>_<channels>` outputs `size` px per side (the margin included) with `channels`
feature maps, and its resolution here is its output sampling rate (the margin left out; the
Fourier-feature `synthesis.input` at the first layer's rate), read from the layer schedule of the
config: the same numbers the studio's layer controls show.

Everything works on plain state dicts (name -> tensor) and the configs checkpoints store."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch

ARCHS = ("stylegan2", "stylegan3-t", "stylegan3-r", "stylegan2-compact")
MAPPING_SIDES = ("a", "b")
MAX_WIDTH = 8.0   # octaves; wider than any model's span of resolutions
# Config fields two parents may differ in; the blend keeps A's. Most steer only training or the
# discriminator; conv_clamp is a safety clamp on activations (NVlabs' training sets 256, its released
# pickles store none), so a model fine-tuned here from a pickle still blends with that pickle.
MAY_DIFFER = frozenset({"w_avg_beta", "magnitude_ema_beta", "num_fp16_res", "cfg", "cond_d", "d_norm", "conv_clamp",
                        "spectral_norm", "minibatch_discrimination", "mbstd", "mbstd_group", "hidden", "depth"})
# fixed buffers (resampling filters, StyleGAN3's input frequencies and transform) come whole from the nearer parent
FIXED_BUFFERS = ("resample_filter", "up_filter", "down_filter", "freqs", "phases", "transform")


class BlendError(ValueError):
    """Two models that cannot be blended, or blend settings out of range; the message says which."""


@dataclass(frozen=True)
class BlendSpec:
    swap_at: int = 16       # px: layers at or below come from A, above from B; 0 = every layer mixes by `mix`
    mix: float = 1.0        # B's share of the layers above swap_at: 0 = A throughout, 1 = the swap
    width: float = 0.0      # octaves of a smooth (logistic) change around swap_at; 0 = a hard switch
    mapping: str = "a"      # "a" | "b": the parent whose mapping network and w_avg the blend keeps

    def __post_init__(self):
        if isinstance(self.swap_at, bool) or not isinstance(self.swap_at, int) or self.swap_at < 0 \
                or (self.swap_at and self.swap_at & (self.swap_at - 1)):
            raise BlendError(f"swap at {self.swap_at!r} px: expected 0 (every layer mixes) or a power of two "
                             "(4, 8, 16 ...)")
        if not (isinstance(self.mix, (int, float)) and 0 <= self.mix <= 1):
            raise BlendError(f"mix {self.mix!r}: expected a number from 0 (A) to 1 (B above swap_at)")
        if not (isinstance(self.width, (int, float)) and 0 <= self.width <= MAX_WIDTH):
            raise BlendError(f"width {self.width!r}: expected from 0 (a hard switch) to {MAX_WIDTH:g} octaves")
        if self.mapping not in MAPPING_SIDES:
            raise BlendError(f"mapping {self.mapping!r}: expected 'a' or 'b'")

    def weight(self, resolution: int) -> float:
        """B's share t(r) of a synthesis layer working at `resolution` px, in [0, 1]."""
        if self.swap_at == 0:
            ramp = 1.0
        elif self.width == 0:
            ramp = 1.0 if resolution > self.swap_at else 0.0
        else:
            x = (math.log2(resolution) - math.log2(self.swap_at) - 0.5) / self.width
            ramp = 1 / (1 + math.exp(-max(min(x, 60.0), -60.0)))
        return float(self.mix) * ramp


@dataclass(frozen=True)
class SynthesisLayer:
    name: str           # "b16", "blocks.2", "input", "L3_36_512": its tensors start with "synthesis.<name>."
    resolution: int     # px the layer works at (StyleGAN3: output sampling rate, margin left out)
    size: int           # px per side of its output (StyleGAN3: margin included)
    channels: int       # feature maps out (ToRGB: the image's channels)


def synthesis_layers(arch: str, config: Mapping, tensors: Mapping[str, torch.Tensor]) -> list[SynthesisLayer]:
    """The synthesis layers of a generator (its arch, stored config and state dict), low to high."""
    layers: dict[str, SynthesisLayer] = {}
    specs = _stylegan3_schedule(config) if arch.startswith("stylegan3") else None
    for key in tensors:
        if not key.startswith("synthesis."):
            continue
        name = key.split(".")[1] if specs is not None or arch == "stylegan2" else ".".join(key.split(".")[1:3])
        if name in layers:
            continue
        if arch == "stylegan2" and (m := re.fullmatch(r"b(\d+)", name)):
            res = int(m.group(1))
            layers[name] = SynthesisLayer(name, res, res, _out_channels(tensors, name))
        elif arch == "stylegan2-compact" and (m := re.fullmatch(r"blocks\.(\d+)", name)):
            res = 4 << int(m.group(1))
            layers[name] = SynthesisLayer(name, res, res, _out_channels(tensors, name))
        elif specs is not None and name == "input":
            layers[name] = SynthesisLayer(name, specs[0].sampling_rate, specs[0].size, specs[0].channels)
        elif specs is not None and (m := re.fullmatch(r"L(\d+)_(\d+)_(\d+)", name)) and int(m.group(1)) < len(specs):
            layers[name] = SynthesisLayer(name, specs[int(m.group(1))].sampling_rate, int(m.group(2)), int(m.group(3)))
        else:
            raise BlendError(f"tensor {key} belongs to no synthesis layer a {arch} model has")
    order = {"input": -1}
    return sorted(layers.values(), key=lambda l: (l.resolution, order.get(l.name, 0), _index(l.name)))


def _stylegan3_schedule(config: Mapping):
    from trainer.models.stylegan3 import StyleGAN3GeneratorConfig, schedule
    return schedule(StyleGAN3GeneratorConfig.from_dict(dict(config)))


def _out_channels(tensors: Mapping[str, torch.Tensor], layer: str) -> int:
    conv = tensors.get(f"synthesis.{layer}.conv1.weight")
    return int(conv.shape[0]) if conv is not None else 0


def _index(name: str) -> int:
    digits = re.findall(r"\d+", name)
    return int(digits[0]) if digits else 0


def check_blendable(arch_a: str, config_a: Mapping, tensors_a: Mapping[str, torch.Tensor],
                    arch_b: str, config_b: Mapping, tensors_b: Mapping[str, torch.Tensor]) -> None:
    """BlendError naming the first difference that keeps two generators from blending: the
    architecture, a config field (resolution, widths, mapping depth, classes ...), a tensor."""
    if arch_a not in ARCHS:
        raise BlendError(f"blending works on {', '.join(ARCHS)} models; A is {arch_a}")
    if arch_a != arch_b:
        raise BlendError(f"A is {arch_a} and B is {arch_b}: blending needs two generators of one architecture")
    for key in list(config_a) + [k for k in config_b if k not in config_a]:
        if key not in MAY_DIFFER and config_a.get(key) != config_b.get(key):
            raise BlendError(f"A and B differ in {key} (A: {config_a.get(key)!r}, B: {config_b.get(key)!r}): "
                             "blending needs two generators of one architecture and size")
    for key, tensor in tensors_a.items():
        if key not in tensors_b:
            raise BlendError(f"tensor {key} is in A but not in B")
        if tensor.shape != tensors_b[key].shape:
            raise BlendError(f"tensor {key} has shape {tuple(tensor.shape)} in A and {tuple(tensors_b[key].shape)} "
                             "in B")
    extra = sorted(set(tensors_b) - set(tensors_a))
    if extra:
        raise BlendError(f"tensor {extra[0]} is in B but not in A")


def tensor_weights(arch: str, config: Mapping, tensors: Mapping[str, torch.Tensor],
                   spec: BlendSpec) -> dict[str, float]:
    """name -> B's share of that tensor: the mapping side's 0 or 1 for mapping tensors, t(r) of
    its layer for synthesis tensors."""
    layers = {l.name: l for l in synthesis_layers(arch, config, tensors)}
    weights = {}
    for key in tensors:
        part = key.split(".")
        if part[0] == "mapping":
            weights[key] = 1.0 if spec.mapping == "b" else 0.0
        elif part[0] == "synthesis":
            layer = layers.get(part[1]) or layers[".".join(part[1:3])]
            weights[key] = spec.weight(layer.resolution)
        else:
            raise BlendError(f"tensor {key} is neither in the mapping nor in the synthesis network")
    return weights


def blend_tensor(name: str, a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """One tensor of the blend, B's share t. Fixed buffers come from the nearer parent; constant
    noise maps keep unit variance ((1-t) a + t b over its norm), the rest interpolate linearly."""
    if t <= 0 or t >= 1 or not a.is_floating_point() or name.rsplit(".", 1)[-1] in FIXED_BUFFERS:
        return (b if t > 0.5 else a).clone()
    if name.endswith("noise_const"):
        return ((1 - t) * a + t * b) / math.hypot(1 - t, t)
    return torch.lerp(a, b.to(a.dtype), t)


def blend_state_dicts(arch: str, config: Mapping, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                      spec: BlendSpec) -> dict[str, torch.Tensor]:
    """A's and B's state dicts (checked with check_blendable) -> the blended state dict."""
    weights = tensor_weights(arch, config, a, spec)
    return {key: blend_tensor(key, a[key], b[key], weights[key]) for key in a}


def describe(arch: str, config: Mapping, tensors: Mapping[str, torch.Tensor], spec: BlendSpec) -> list[str]:
    """One line per resolution: its layers and where they come from ("16 px  L0-L6: A")."""
    by_resolution: dict[int, list[str]] = {}
    for layer in synthesis_layers(arch, config, tensors):
        by_resolution.setdefault(layer.resolution, []).append(layer.name)
    lines = []
    for res, names in by_resolution.items():
        t = spec.weight(res)
        source = "A" if t == 0 else "B" if t == 1 else f"{1 - t:.0%} A + {t:.0%} B"
        shown = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} layers)"
        lines.append(f"{res:5d} px  {shown}: {source}")
    return lines + [f"mapping network and w_avg: {spec.mapping.upper()}"]


# ---- models on disk ----
@dataclass(frozen=True)
class Parent:
    """A generator read from disk as plain data."""
    path: str                          # the file read (a run directory's newest checkpoint)
    arch: str
    config: dict                       # the generator config its checkpoint stores
    tensors: dict[str, torch.Tensor]   # its state dict, on the CPU
    dataset: dict                      # the checkpoint's dataset metadata (name, class names ...)
    sha256: str                        # of the file read


def load_parent(path) -> Parent:
    """A .safetensors checkpoint, a run directory (its newest checkpoint) or an NVlabs .pkl (read
    by the restricted importer: nothing in it runs) -> Parent. CheckpointError when unusable."""
    from trainer.checkpoint import load_generator
    from trainer.files import file_sha256
    path = Path(path)
    if path.suffix.lower() == ".pkl" and path.is_file():
        from trainer.importers.nvlabs_pkl import convert_nvlabs_pickle
        G, _, metadata = convert_nvlabs_pickle(path)
        config = json.loads(metadata["config"])
        return Parent(str(path), config["arch"], config, _cpu_state(G), json.loads(metadata["dataset"]),
                      metadata["source_sha256"])
    G = load_generator(path)
    info = G.checkpoint_info
    return Parent(info["path"], info["config"]["arch"], info["config"], _cpu_state(G), dict(info["dataset"]),
                  file_sha256(info["path"]))


def _cpu_state(G: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in G.state_dict().items()}


def check_parents(a: Parent, b: Parent) -> None:
    try:
        check_blendable(a.arch, a.config, a.tensors, b.arch, b.config, b.tensors)
    except BlendError as exc:
        raise BlendError(f"cannot blend {Path(a.path).name} (A) with {Path(b.path).name} (B): {exc}") from None


def blend_record(a: Parent, b: Parent, spec: BlendSpec) -> dict:
    """What a blended checkpoint's `blend` metadata holds: its parents and the settings."""
    # absolute, as inversions and tuned checkpoints name their sources: the record outlives the shell
    parent = lambda p: {"path": str(Path(p.path).resolve()), "sha256": p.sha256, "arch": p.arch}   # noqa: E731
    return {"a": parent(a), "b": parent(b), **asdict(spec)}


def write_blend(a: Parent, b: Parent, spec: BlendSpec, out) -> dict:
    """Blend two parents into a checkpoint at `out` (written atomically), an ordinary generator
    export whose metadata `blend` (JSON) names the parents and settings; its dataset metadata is the
    mapping parent's. Returns that record. BlendError when they do not blend."""
    from trainer.checkpoint import export_generator
    from trainer.models import ARCHS as REGISTRY, build_generator
    check_parents(a, b)
    cfg = REGISTRY[a.arch].config_type.from_dict(a.config)
    G = build_generator(cfg)
    G.load_state_dict(blend_state_dicts(a.arch, a.config, a.tensors, b.tensors, spec), strict=True)
    record = blend_record(a, b, spec)
    dataset = (b if spec.mapping == "b" else a).dataset
    export_generator(G, out, cfg, 0, 0.0, dataset, extra={"blend": json.dumps(record, sort_keys=True)})
    return record


class LiveBlend:
    """A generator blended in place from its own tensors (A) and a partner's (B), both kept beside
    it on its device, so a new blend writes weights without reading any file (the studio's slider)."""

    def __init__(self, G: torch.nn.Module, arch: str, config: Mapping, partner: Parent):
        own = dict(G.state_dict())
        check_blendable(arch, config, own, partner.arch, partner.config, partner.tensors)
        self.arch, self.config = arch, dict(config)
        self.a = {k: v.detach().float().clone() for k, v in own.items()}
        self.b = {k: partner.tensors[k].detach().to(v.device, torch.float32) for k, v in own.items()}
        self.spec: BlendSpec | None = None          # None: A's own tensors are in place
        self._weights = dict.fromkeys(self.a, 0.0)

    def apply(self, G: torch.nn.Module, spec: BlendSpec | None) -> None:
        """Write the blend `spec` (None: A's own tensors) into G's parameters and buffers in place;
        only tensors whose weight changed are written."""
        if spec == self.spec:
            return
        weights = dict.fromkeys(self.a, 0.0) if spec is None else tensor_weights(self.arch, self.config, self.a, spec)
        targets = {**dict(G.named_parameters()), **dict(G.named_buffers())}
        with torch.no_grad():
            for key, t in weights.items():
                if t != self._weights[key]:
                    targets[key].copy_(blend_tensor(key, self.a[key], self.b[key], t))
        self.spec, self._weights = spec, weights

    def to(self, device) -> "LiveBlend":
        self.a = {k: v.to(device) for k, v in self.a.items()}
        self.b = {k: v.to(device) for k, v in self.b.items()}
        return self
