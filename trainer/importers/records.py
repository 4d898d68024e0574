"""Reading NVlabs network records (see unpickler.py) as data: their tensors under state-dict
names, their layer classes, and their constructor settings checked one by one. Shared by the
StyleGAN2 and StyleGAN3 importers."""
from __future__ import annotations

import numpy as np
import torch

from trainer.importers import NetworkImportError
from trainer.importers.unpickler import NetworkRecord


def classes_in(record: NetworkRecord) -> set[str]:
    """The class names of a record and every sub-network under it."""
    names = {record.class_name}
    for child in (record.state.get("_modules") or {}).values():
        if isinstance(child, NetworkRecord):
            names |= classes_in(child)
    return names


def flatten_state(record: NetworkRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a record tree, named as in a PyTorch state dict."""
    out = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (record.state.get(group) or {}).items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise NetworkImportError(f"{prefix}{name} is not a tensor")
            out[prefix + name] = value
    for name, child in (record.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, NetworkRecord):
            raise NetworkImportError(f"sub-network {prefix}{name} is a {type(child).__name__}, not an NVlabs layer")
        out.update(flatten_state(child, f"{prefix}{name}."))
    return out


def init_kwargs(record: NetworkRecord, positional: list[str]) -> dict:
    args = record.state.get("_init_args", ())
    kwargs = record.state.get("_init_kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict) or len(args) > len(positional):
        raise NetworkImportError(f"{record.class_name} has no readable constructor arguments")
    out = dict(zip(positional, args))
    out.update(kwargs)
    return out


def take_settings(where: str, values, defaults: dict, ignored: tuple[str, ...] = ()) -> dict:
    """Settings dict -> defaults updated with it; a key this importer does not know is refused."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(defaults) - set(ignored))
    if unknown:
        raise NetworkImportError(f"{where} uses setting(s) this importer cannot reproduce: {', '.join(unknown)}")
    out = dict(defaults)
    out.update({k: v for k, v in values.items() if k in defaults})
    return out


def as_number(where: str, value, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NetworkImportError(f"{where} = {value!r} is not a number")
    if integer and float(value) != int(value):
        raise NetworkImportError(f"{where} = {value!r} is not an integer")
    return int(value) if integer else float(value)


def require_choice(where: str, settings: dict, name: str, allowed) -> None:
    if settings[name] not in allowed:
        raise NetworkImportError(f"{where} uses {name} = {settings[name]!r}; "
                                 f"supported: {', '.join(map(repr, allowed))}")

