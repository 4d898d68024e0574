"""The one device picker: the trainer, the metrics and the studio all choose devices here."""
from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Devices this machine can run on, best first: cuda, mps, cpu."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def pick_device(requested: str = "auto") -> str:
    """"auto" -> the best available device; anything else is checked and returned.
    Raises ValueError naming the devices there are when the request is not one of them."""
    requested = str(requested)
    devices = available_devices()
    if requested == "auto":
        return devices[0]
    if requested.split(":")[0] not in devices:
        raise ValueError(f"device {requested!r} is not available here (available: {', '.join(devices)})")
    return requested


def select_device(requested: str = "auto") -> torch.device:
    """pick_device as a torch.device."""
    return torch.device(pick_device(requested))
