"""Importers for networks trained elsewhere, written as ordinary GAN Studio checkpoints.

- `nvlabs_pkl`: NVlabs network pickles (stylegan2-ada-pytorch, and the StyleGAN2 and StyleGAN3
  -T / -R networks of stylegan3), read with a restricted unpickler (`unpickler`) that never
  imports or runs anything from the file; `records` reads the networks as data and
  `stylegan3_pkl` maps StyleGAN3 ones onto trainer.models.stylegan3.
- `rosinality`: rosinality stylegan2-pytorch `.pt` checkpoints, read with weights_only=True.
"""
from __future__ import annotations

from trainer.checkpoint import CheckpointError


class NetworkImportError(CheckpointError):
    """A file that cannot be imported; the message says what the file is and what is supported.
    Nothing is written when this is raised."""


def import_network(path, out, source: str = "nvlabs", include_discriminator: bool = False,
                   progress=None) -> dict:
    """Convert `path` into a GAN Studio checkpoint at `out` (written atomically).

    source: "nvlabs" (network pickle) or "rosinality" (.pt with g_ema). Returns a summary dict
    (arch, resolution, c_dim, num_ws, kept, source_sha256). Raises NetworkImportError."""
    if source == "nvlabs":
        from trainer.importers.nvlabs_pkl import import_nvlabs_pickle
        return import_nvlabs_pickle(path, out, include_discriminator, progress)
    if source == "rosinality":
        from trainer.importers.rosinality import import_rosinality
        return import_rosinality(path, out, progress)
    raise NetworkImportError(f"unknown source {source!r}; choose nvlabs or rosinality")
