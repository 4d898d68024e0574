"""NVlabs StyleGAN3 records (training.networks_stylegan3: Generator, MappingNetwork,
SynthesisNetwork, SynthesisInput, SynthesisLayer, FullyConnectedLayer), read as data, ->
the config of trainer.models.stylegan3; and a check that every schedule value the pickle stores
(sizes, sampling rates, cutoffs, transition widths, filter lengths, paddings) is the one the
rebuilt model computes, so a file whose layers were built some other way is refused, not
rendered wrongly. The designed filters themselves are buffers: they are taken from the file."""
from __future__ import annotations

import numpy as np

from trainer.config import ConfigError
from trainer.importers import NetworkImportError
from trainer.importers.records import as_number, classes_in, init_kwargs, take_settings
from trainer.importers.unpickler import NetworkRecord
from trainer.models.stylegan3 import ARCH_R, ARCH_T, StyleGAN3Generator, StyleGAN3GeneratorConfig

GENERATOR_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisInput", "SynthesisLayer",
                     "FullyConnectedLayer"}
# Attributes NVlabs' modules keep, compared with the rebuilt model's of the same name.
GENERATOR_ATTRIBUTES = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws")
SYNTHESIS_ATTRIBUTES = ("w_dim", "num_ws", "img_resolution", "img_channels", "num_layers", "num_critical",
                        "output_scale", "layer_names")
INPUT_ATTRIBUTES = ("w_dim", "channels", "size", "sampling_rate", "bandwidth")
LAYER_ATTRIBUTES = ("w_dim", "is_torgb", "is_critically_sampled", "in_channels", "out_channels", "in_size",
                    "out_size", "in_sampling_rate", "out_sampling_rate", "tmp_sampling_rate", "in_cutoff", "out_cutoff",
                    "in_half_width", "out_half_width", "conv_kernel", "up_factor", "up_taps", "down_factor",
                    "down_taps", "down_radial", "padding", "magnitude_ema_beta")
RELATIVE_TOLERANCE = 1e-9   # the schedule is recomputed in float64 exactly as stored; allow rounding only


def is_stylegan3(record: NetworkRecord) -> bool:
    """Only StyleGAN3 has a Fourier-feature SynthesisInput."""
    return "SynthesisInput" in classes_in(record)


def generator_config(record: NetworkRecord) -> StyleGAN3GeneratorConfig:
    """An NVlabs StyleGAN3 Generator record -> the config of the matching generator here."""
    named = {"z_dim": None, "c_dim": None, "w_dim": None, "img_resolution": None, "img_channels": None,
             "mapping_kwargs": {}}
    given = init_kwargs(record, list(named))
    synthesis = {k: given.pop(k) for k in list(given) if k not in named}   # Generator(**synthesis_kwargs)
    kw = take_settings("the generator", given, named)
    m = take_settings("the mapping network", kw["mapping_kwargs"],
                      {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998})
    s = take_settings("the synthesis network", synthesis,
                      {"channel_base": 32768, "channel_max": 512, "num_layers": 14, "num_critical": 2,
                       "first_cutoff": 2, "first_stopband": 2 ** 2.1, "last_stopband_rel": 2 ** 0.3,
                       "margin_size": 10, "output_scale": 0.25, "num_fp16_res": 4, "conv_kernel": 3,
                       "filter_size": 6, "lrelu_upsampling": 2, "use_radial_filters": False, "conv_clamp": 256,
                       "magnitude_ema_beta": 0.999})
    if not isinstance(s["use_radial_filters"], (bool, np.bool_)):
        raise NetworkImportError(f"use_radial_filters = {s['use_radial_filters']!r} is not a bool")
    integers = ("channel_base", "channel_max", "num_layers", "num_critical", "margin_size", "num_fp16_res",
                "conv_kernel", "filter_size", "lrelu_upsampling")
    floats = ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale", "magnitude_ema_beta")
    clamp = as_number("conv_clamp", s["conv_clamp"], allow_none=True)
    try:
        return StyleGAN3GeneratorConfig.from_dict({
            "arch": ARCH_R if s["use_radial_filters"] else ARCH_T,
            **{name: as_number(name, kw[name], integer=True)
               for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")},
            "mapping_layers": as_number("num_layers", m["num_layers"], integer=True),
            "mapping_lr_multiplier": as_number("lr_multiplier", m["lr_multiplier"]),
            "w_avg_beta": as_number("w_avg_beta", m["w_avg_beta"]),
            **{name: as_number(name, s[name], integer=True) for name in integers},
            **{name: as_number(name, s[name]) for name in floats},
            "conv_clamp": 0.0 if clamp is None else clamp})
    except ConfigError as exc:
        raise NetworkImportError(f"the generator's settings are out of range: {exc}") from None


def check_schedule(record: NetworkRecord, G: StyleGAN3Generator) -> None:
    """Every layer attribute the file stores equals the rebuilt model's, or NetworkImportError."""
    _same("the generator", record, G, GENERATOR_ATTRIBUTES)
    synthesis = _child(record, "synthesis")
    _same("the synthesis network", synthesis, G.synthesis, SYNTHESIS_ATTRIBUTES)
    _same("the synthesis input", _child(synthesis, "input"), G.synthesis.input, INPUT_ATTRIBUTES)
    for name in G.synthesis.layer_names:
        _same(f"layer {name}", _child(synthesis, name), getattr(G.synthesis, name), LAYER_ATTRIBUTES)


def _child(record: NetworkRecord, name: str) -> NetworkRecord:
    child = (record.state.get("_modules") or {}).get(name)
    if not isinstance(child, NetworkRecord):
        raise NetworkImportError(f"{record.class_name} has no sub-network {name!r}")
    return child


def _same(where: str, record: NetworkRecord, module, names: tuple[str, ...]) -> None:
    for name in names:
        if name not in record.state:   # not every version stores every value; the tensors are checked anyway
            continue
        stored, ours = record.state[name], getattr(module, name)
        if isinstance(ours, list) and isinstance(ours[0], str) and isinstance(stored, list) \
                and len(stored) == len(ours) and stored != ours:
            index = next(i for i, (a, b) in enumerate(zip(stored, ours)) if a != b)   # name the first difference
            name, stored, ours = f"{name}[{index}]", stored[index], ours[index]
        if not _equal(stored, ours):
            raise NetworkImportError(f"{where} stores {name} = {_show(stored)}, but its settings give {_show(ours)} "
                                     "(layers built by another schedule are not reproduced)")


def _equal(stored, ours) -> bool:
    if isinstance(ours, str):
        return stored == ours
    if isinstance(ours, list) and all(isinstance(v, str) for v in ours):
        return isinstance(stored, (list, tuple)) and list(stored) == ours
    if isinstance(stored, (bool, np.bool_)) or isinstance(ours, bool):
        return isinstance(stored, (bool, np.bool_)) and bool(stored) == ours
    try:
        a, b = np.asarray(stored, dtype=np.float64), np.asarray(ours, dtype=np.float64)
        return a.ndim <= 1 and bool(np.allclose(a, b, rtol=RELATIVE_TOLERANCE, atol=0))
    except (TypeError, ValueError):
        return False


def _show(value) -> str:
    return repr(value.tolist() if isinstance(value, np.ndarray) else value)[:80]
