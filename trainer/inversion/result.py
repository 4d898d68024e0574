"""Inversion results on disk: `<name>.npz` with `ws` [num_ws, w_dim] float32, `noise/<layer>` maps
when noise was fitted, `target` and `reconstruction` uint8 [H, W, C], the per-report record
(`record/step`, `record/loss`, `record/psnr`, `record/ssim`) and `meta`, a JSON string (checkpoint
path and sha256, image sha256, crop, space, steps, settings, losses, PSNR / SSIM). Read without
unpickling anything; numpy only, so the studio's widgets can read one without torch."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.files import parse_json

FORMAT = "ganstudio.inversion"
FORMAT_VERSION = 1


class InversionFileError(ValueError):
    """A file that is not a usable inversion result; the message says why."""




@dataclass(eq=False)
class Inversion:
    """One image's inversion as stored in its .npz."""
    ws: np.ndarray                      # [num_ws, w_dim] float32
    noise: dict[str, np.ndarray]        # layer -> [H, W]
    target: np.ndarray                  # uint8 [H, W, C]
    reconstruction: np.ndarray          # uint8 [H, W, C]
    record: dict[str, np.ndarray]       # "step" [R]; "loss", "psnr", "ssim" [R]
    meta: dict                          # checkpoint, checkpoint_sha256, image, image_sha256, crop, settings, psnr, ssim, ...


def inversion_from_batch(result, index: int, target: np.ndarray, meta: dict) -> Inversion:
    """The index-th image of a batch projection (trainer.inversion.project.ProjectionResult) -> Inversion (meta completed with its figures)."""
    meta = dict(meta)
    meta.update({"format": FORMAT, "version": FORMAT_VERSION, "space": result.settings.space,
                 "steps": result.steps_done, "cancelled": result.cancelled,
                 "settings": result.settings.to_dict(), "losses": dict(result.settings.losses),
                 "psnr": float(result.psnr[index]), "ssim": float(result.ssim[index]),
                 "class": result.classes[index], "start": result.start, "notes": list(result.notes)})
    return Inversion(result.ws[index], {k: v[index] for k, v in result.noise.items()}, np.asarray(target),
                     result.reconstruction[index],
                     {"step": result.record["step"], **{k: result.record[k][:, index] for k in ("loss", "psnr", "ssim")}},
                     meta)


def save_inversion(path, inv: Inversion) -> None:
    from trainer.files import atomic_write
    arrays = {"ws": inv.ws.astype(np.float32), "target": inv.target.astype(np.uint8),
              "reconstruction": inv.reconstruction.astype(np.uint8),
              "meta": np.array(json.dumps(inv.meta, sort_keys=True))}
    arrays.update({f"noise/{k}": v.astype(np.float32) for k, v in inv.noise.items()})
    arrays.update({f"record/{k}": np.asarray(v) for k, v in inv.record.items()})

    def write(tmp):
        with open(tmp, "wb") as f:   # a file object: np.savez would add ".npz" to a bare name
            np.savez(f, **arrays)
    atomic_write(path, write)


def load_inversion(path) -> Inversion:
    """Read an inversion .npz (never unpickling anything) -> Inversion; InversionError says why not."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InversionFileError(f"{path.name} is not a readable inversion file: {exc}") from None
    if "ws" not in arrays or "meta" not in arrays:
        raise InversionFileError(f"{path.name} is not an inversion file (it needs `ws` and `meta`)")
    try:
        meta = parse_json(str(arrays["meta"]), f"{path.name}'s meta")
    except ValueError as exc:
        raise InversionFileError(f"{path.name}: its meta is not JSON ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise InversionFileError(f"{path.name}: inversion format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}; this version reads {FORMAT} {FORMAT_VERSION}")
    ws = arrays["ws"].astype(np.float32)
    if ws.ndim != 2 or not np.isfinite(ws).all():
        raise InversionFileError(f"{path.name}: ws must be a finite [num_ws, w_dim] array, got {ws.shape}")
    return Inversion(ws, {k[6:]: v for k, v in arrays.items() if k.startswith("noise/")},
                     arrays.get("target", np.zeros((0, 0, 1), np.uint8)),
                     arrays.get("reconstruction", np.zeros((0, 0, 1), np.uint8)),
                     {k[7:]: v for k, v in arrays.items() if k.startswith("record/")}, meta)
