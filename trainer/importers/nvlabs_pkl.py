"""Import NVlabs network pickles (stylegan2-ada-pytorch snapshots such as ffhq.pkl, and the
StyleGAN2 and StyleGAN3 -T / -R snapshots of NVlabs' stylegan3 repository) without running
anything from the file.

An NVlabs pickle stores each network as `torch_utils.persistence._reconstruct_persistent_obj(meta)`
where `meta` holds the class name, the complete Python source of the module that defined it, and
the module's attribute dict; NVlabs' own loader exec()s that source. Here, `NetworkUnpickler`
resolves every global the file names through an allow-list of functions written in this file:
a persistent object becomes a plain `NetworkRecord` (class name, state, the source as inert text
that is never compiled), tensors are rebuilt from their raw bytes for a fixed set of storage
types, numpy scalars and arrays only for numeric dtypes, and anything else (os.system, builtins.exec, a
scikit-learn class, TensorFlow-era networks) stops the load with a message naming it. The
records' shapes and constructor settings are then checked against this project's NVlabs-exact
architectures (`trainer.models.stylegan2_nvlabs`; `trainer.models.stylegan3`, recognised by its
SynthesisInput, see stylegan3_pkl.py) before a single byte is written. A StyleGAN3 snapshot's
discriminator is NVlabs' StyleGAN2 one and is kept the same way (--with-d).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from trainer.checkpoint import DISCRIMINATOR_PREFIX, FORMAT, FORMAT_VERSION, tensors_sha256, write_safetensors
from trainer.config import ConfigError
from trainer.files import file_sha256
from trainer.importers import NetworkImportError, stylegan3_pkl
from trainer.importers.records import (as_number, classes_in, flatten_state, init_kwargs, require_choice,
                                       take_settings)
from trainer.importers.unpickler import SUPPORTED, NetworkRecord, read_network_pickle
from trainer.models.stylegan2_nvlabs import (NVlabsDiscriminator, NVlabsDiscriminatorConfig, NVlabsGenerator,
                                             NVlabsGeneratorConfig)

STYLEGAN2_G_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
                       "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer"}
STYLEGAN2_D_CLASSES = {"Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
                       "MappingNetwork", "FullyConnectedLayer", "Conv2dLayer"}


def _filter_taps(where: str, value) -> list[float]:
    taps = list(value) if isinstance(value, (list, tuple)) else None
    if not taps or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in taps):
        raise NetworkImportError(f"{where} resample_filter = {value!r}: only 1-D filter taps can be reproduced")
    return [float(t) for t in taps]


def generator_config(record: NetworkRecord) -> NVlabsGeneratorConfig:
    """An NVlabs Generator record -> the config of the matching NVlabs-exact generator."""
    named = {"z_dim": None, "c_dim": None, "w_dim": None, "img_resolution": None, "img_channels": None,
             "mapping_kwargs": {}, "synthesis_kwargs": {}}
    given = init_kwargs(record, list(named))
    # stylegan3's copy of the StyleGAN2 generator takes the synthesis settings as **kwargs
    extra = {k: given.pop(k) for k in list(given) if k not in named}
    kw = take_settings("the generator", given, named)
    kw["synthesis_kwargs"] = {**dict(kw["synthesis_kwargs"] or {}), **extra}
    m = take_settings("the mapping network", kw["mapping_kwargs"],
                      {"num_layers": 8, "embed_features": None, "layer_features": None, "activation": "lrelu",
                       "lr_multiplier": 0.01, "w_avg_beta": 0.995})
    s = take_settings("the synthesis network", kw["synthesis_kwargs"],
                      {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "architecture": "skip",
                       "resample_filter": [1, 3, 3, 1], "conv_clamp": None, "kernel_size": 3, "use_noise": True,
                       "activation": "lrelu"},
                      ignored=("fp16_channels_last", "fused_modconv_default"))
    require_choice("the mapping network", m, "activation", ("lrelu",))
    require_choice("the synthesis network", s, "activation", ("lrelu",))
    require_choice("the synthesis network", s, "kernel_size", (3,))
    require_choice("the synthesis network", s, "architecture", ("skip",))
    if m["w_avg_beta"] is None:
        raise NetworkImportError("the mapping network keeps no w_avg (w_avg_beta = None), so truncation is undefined")
    w_dim = as_number("w_dim", kw["w_dim"], integer=True)
    c_dim = as_number("c_dim", kw["c_dim"], integer=True)
    embed = as_number("embed_features", m["embed_features"], integer=True, allow_none=True)
    layer = as_number("layer_features", m["layer_features"], integer=True, allow_none=True)
    clamp = as_number("conv_clamp", s["conv_clamp"], allow_none=True)
    try:
        return NVlabsGeneratorConfig.from_dict({
            "z_dim": as_number("z_dim", kw["z_dim"], integer=True), "c_dim": c_dim, "w_dim": w_dim,
            "img_resolution": as_number("img_resolution", kw["img_resolution"], integer=True),
            "img_channels": as_number("img_channels", kw["img_channels"], integer=True),
            "mapping_layers": as_number("num_layers", m["num_layers"], integer=True),
            "embed_features": (w_dim if embed is None else embed) if c_dim else 0,
            "layer_features": w_dim if layer is None else layer,
            "mapping_lr_multiplier": as_number("lr_multiplier", m["lr_multiplier"]),
            "channel_base": as_number("channel_base", s["channel_base"], integer=True),
            "channel_max": as_number("channel_max", s["channel_max"], integer=True),
            "num_fp16_res": as_number("num_fp16_res", s["num_fp16_res"], integer=True),
            "conv_clamp": 0.0 if clamp is None else clamp,
            "use_noise": bool(s["use_noise"]),
            "resample_filter": _filter_taps("the synthesis network", s["resample_filter"])})
    except ConfigError as exc:
        raise NetworkImportError(f"the generator's settings are out of range: {exc}") from None


def discriminator_config(record: NetworkRecord) -> NVlabsDiscriminatorConfig:
    """An NVlabs Discriminator record -> the config of the matching NVlabs-exact discriminator."""
    kw = take_settings("the discriminator", init_kwargs(record, [
        "c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
        "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"]),
        {"c_dim": None, "img_resolution": None, "img_channels": None, "architecture": "resnet",
         "channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": None, "cmap_dim": None,
         "block_kwargs": {}, "mapping_kwargs": {}, "epilogue_kwargs": {}})
    b = take_settings("the discriminator blocks", kw["block_kwargs"],
                      {"activation": "lrelu", "resample_filter": [1, 3, 3, 1]},
                      ignored=("fp16_channels_last", "freeze_layers"))
    m = take_settings("the discriminator's label mapping", kw["mapping_kwargs"],
                      {"num_layers": 8, "embed_features": None, "layer_features": None, "activation": "lrelu",
                       "lr_multiplier": 0.01})
    e = take_settings("the discriminator epilogue", kw["epilogue_kwargs"],
                      {"mbstd_group_size": 4, "mbstd_num_channels": 1, "activation": "lrelu"})
    require_choice("the discriminator", kw, "architecture", ("resnet",))
    for where, d in (("the discriminator blocks", b), ("the discriminator's label mapping", m),
                     ("the discriminator epilogue", e)):
        require_choice(where, d, "activation", ("lrelu",))
    c_dim = as_number("c_dim", kw["c_dim"], integer=True)
    channel_base = as_number("channel_base", kw["channel_base"], integer=True)
    channel_max = as_number("channel_max", kw["channel_max"], integer=True)
    cmap = as_number("cmap_dim", kw["cmap_dim"], integer=True, allow_none=True)
    cmap = (min(channel_base // 4, channel_max) if cmap is None else cmap) if c_dim else 0
    for name in ("embed_features", "layer_features"):
        if m[name] is not None and c_dim and int(m[name]) != cmap:
            raise NetworkImportError(f"the discriminator's label mapping uses {name} = {m[name]} (only cmap_dim = "
                                     f"{cmap} is reproduced)")
    clamp = as_number("conv_clamp", kw["conv_clamp"], allow_none=True)
    group = as_number("mbstd_group_size", e["mbstd_group_size"], integer=True, allow_none=True)
    try:
        return NVlabsDiscriminatorConfig.from_dict({
            "c_dim": c_dim, "img_resolution": as_number("img_resolution", kw["img_resolution"], integer=True),
            "img_channels": as_number("img_channels", kw["img_channels"], integer=True),
            "channel_base": channel_base, "channel_max": channel_max,
            "num_fp16_res": as_number("num_fp16_res", kw["num_fp16_res"], integer=True),
            "conv_clamp": 0.0 if clamp is None else clamp, "cmap_dim": cmap,
            "mapping_layers": as_number("num_layers", m["num_layers"], integer=True),
            "mapping_lr_multiplier": as_number("lr_multiplier", m["lr_multiplier"]),
            "mbstd_group_size": 0 if group is None else group,
            "mbstd_num_channels": as_number("mbstd_num_channels", e["mbstd_num_channels"], integer=True),
            "resample_filter": _filter_taps("the discriminator", b["resample_filter"])})
    except ConfigError as exc:
        raise NetworkImportError(f"the discriminator's settings are out of range: {exc}") from None


def _load_exactly(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str,
                  family: str = "StyleGAN2") -> None:
    """Copy tensors into model after checking names and shapes one to one."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = [f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                 for label, names in (("missing", missing), ("not reproduced", unexpected)) if names]
        raise NetworkImportError(f"the {what}'s tensors do not match a {family} of its settings ({'; '.join(parts)})")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise NetworkImportError(f"the {what}'s tensor {name} has shape {tuple(tensor.shape)}; its settings "
                                     f"give {tuple(expected[name].shape)}")
        if not tensor.dtype.is_floating_point:
            raise NetworkImportError(f"the {what}'s tensor {name} is {tensor.dtype}, not floating point")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    for name, tensor in model.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise NetworkImportError(f"the {what}'s tensor {name} holds NaN or infinite values")
    if any(name.endswith("resample_filter") for name in expected):
        reference = {n: t for n, t in expected.items() if n.endswith("resample_filter")}
        for name, tensor in reference.items():
            if not torch.allclose(tensors[name].float(), tensor, atol=1e-6):
                raise NetworkImportError(f"the {what}'s {name} is not the filter its settings describe "
                                         "(only separable filters built from 1-D taps are reproduced)")


def _network(snapshot: dict, key: str, classes: set[str], family: str = "StyleGAN2") -> NetworkRecord:
    record = snapshot.get(key)
    if not isinstance(record, NetworkRecord):
        raise NetworkImportError(f"its {key!r} entry is not an NVlabs network")
    found = classes_in(record)
    if not found <= classes:
        raise NetworkImportError(f"its {key} contains layers of kinds {', '.join(sorted(found - classes))}, which "
                                 f"are not {family}'s; {SUPPORTED}")
    return record


def _generator(snapshot: dict, key: str):
    """The snapshot's generator record -> (record, config, model with the file's tensors)."""
    record = snapshot.get(key)
    stylegan3 = isinstance(record, NetworkRecord) and stylegan3_pkl.is_stylegan3(record)
    if stylegan3:
        record = _network(snapshot, key, stylegan3_pkl.GENERATOR_CLASSES, "StyleGAN3 (alias-free)")
    else:
        record = _network(snapshot, key, STYLEGAN2_G_CLASSES)
    if record.class_name != "Generator":
        raise NetworkImportError(f"its {key} is a {record.class_name}, not a Generator")
    if not stylegan3:
        cfg = generator_config(record)
        G = NVlabsGenerator(cfg)
        _load_exactly(G, flatten_state(record), "generator")
        return record, cfg, G
    cfg = stylegan3_pkl.generator_config(record)
    G = stylegan3_pkl.StyleGAN3Generator(cfg)
    stylegan3_pkl.check_schedule(record, G)
    _load_exactly(G, flatten_state(record), "generator", "StyleGAN3")
    return record, cfg, G


def _no_progress(fraction: float, message: str) -> None:
    pass


def convert_nvlabs_pickle(path, include_discriminator: bool = False, progress=None):
    """Read and check an NVlabs pickle -> (G, D or None, metadata dict). Writes nothing."""
    progress = progress or _no_progress
    path = Path(path)
    progress(0.05, f"hashing {path.name}")
    sha = file_sha256(path) if path.is_file() else ""
    progress(0.2, f"reading {path.name} (nothing in it is run)")
    snapshot = read_network_pickle(path)
    progress(0.6, "checking the networks against the NVlabs-exact architecture")
    G, D, metadata = convert_snapshot(snapshot, path.name, sha, include_discriminator)
    progress(0.8, "networks rebuilt")
    return G, D, metadata


def convert_snapshot(snapshot, file_name: str, sha256: str = "", include_discriminator: bool = False):
    """An unpickled snapshot (records, see read_network_pickle) -> (G, D or None, metadata)."""
    if isinstance(snapshot, NetworkRecord):
        raise NetworkImportError(f"{file_name} holds a single {snapshot.class_name}, not an NVlabs training "
                                 "snapshot (a dict with G, D and G_ema)")
    if not isinstance(snapshot, dict) or not ({"G_ema", "G"} & set(snapshot)):
        what = f"a dict with keys {sorted(map(str, snapshot))[:6]}" if isinstance(snapshot, dict) \
            else f"a {type(snapshot).__name__}"
        raise NetworkImportError(f"{file_name} holds {what}, not an NVlabs network snapshot (G, D, G_ema); {SUPPORTED}")
    g_key = "G_ema" if "G_ema" in snapshot else "G"
    try:
        g_record, g_cfg, G = _generator(snapshot, g_key)
        D = d_cfg = None
        if include_discriminator:
            if "D" not in snapshot:
                raise NetworkImportError("it holds no discriminator ('D'), so --with-d cannot keep one")
            d_record = _network(snapshot, "D", STYLEGAN2_D_CLASSES)
            if d_record.class_name != "Discriminator":
                raise NetworkImportError(f"its D is a {d_record.class_name}, not a Discriminator")
            d_cfg = discriminator_config(d_record)
            D = NVlabsDiscriminator(d_cfg)
            _load_exactly(D, flatten_state(d_record), "discriminator")
    except NetworkImportError as exc:
        raise NetworkImportError(f"{file_name}: {exc}") from None
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError) as exc:   # settings that cannot be built
        raise NetworkImportError(f"{file_name}: its networks cannot be rebuilt exactly: {exc}") from None
    kimg = re.search(r"network-snapshot-(\d+)", file_name)
    training_set = snapshot.get("training_set_kwargs")
    dataset_path = training_set.get("path") if isinstance(training_set, dict) else None
    dataset_name = Path(str(dataset_path)).stem if isinstance(dataset_path, str) else Path(file_name).stem
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": g_cfg.arch,
        "config": json.dumps(g_cfg.to_dict(), sort_keys=True), "step": "0",
        "kimg": f"{float(kimg.group(1)) if kimg else 0.0:.4f}",
        "dataset": json.dumps({"name": dataset_name, "resolution": g_cfg.img_resolution, "class_names": []},
                              sort_keys=True),
        "source": "nvlabs-pkl", "source_file": file_name, "source_sha256": sha256,
        "source_network": g_key, "source_module_sha256": g_record.source_sha256,
        "kept": g_key + (",D" if D is not None else ""),
        "precision": "float32" + (f" (the file ran its top {g_cfg.num_fp16_res} resolutions in float16)"
                                  if g_cfg.num_fp16_res else ""),
    }
    if d_cfg is not None:
        metadata["discriminator_config"] = json.dumps(d_cfg.to_dict(), sort_keys=True)
    return G.eval(), (D.eval() if D is not None else None), metadata


def import_nvlabs_pickle(path, out, include_discriminator: bool = False, progress=None) -> dict:
    """NVlabs network pickle -> GAN Studio checkpoint at `out` (atomic; nothing written on refusal).

    Returns a summary: arch, resolution, c_dim, num_ws, kept, source_sha256, out."""
    progress = progress or _no_progress
    G, D, metadata = convert_nvlabs_pickle(path, include_discriminator, progress)
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    if D is not None:
        tensors.update({DISCRIMINATOR_PREFIX + k: v.detach().cpu().contiguous() for k, v in D.state_dict().items()})
    progress(0.9, f"writing {Path(out).name}")
    metadata["tensors_sha256"] = tensors_sha256(tensors)   # loading verifies it
    write_safetensors(out, tensors, metadata)
    progress(1.0, "imported")
    return {"out": str(out), "arch": metadata["arch"], "resolution": G.img_resolution, "c_dim": G.c_dim,
            "num_ws": G.num_ws, "kept": metadata["kept"], "source_sha256": metadata["source_sha256"],
            "params": sum(t.numel() for t in G.parameters())}

