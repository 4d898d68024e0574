"""File > Export > ONNX…, the decisions: which choices the open model offers (input, noise,
transform, truncation centre, direction), where the file goes by default, and the job that
writes it on the render worker from the open checkpoint's file (trainer.export.export_onnx).
The dialog in ganstudio/widgets/onnx_dialog.py only shows these."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganstudio.engine.model_info import ModelInfo

JOB_NAME = "onnx export"


@dataclass(frozen=True)
class OnnxChoices:
    """What the dialog offers for one model (plain values)."""
    inputs: tuple[str, ...]        # ("z", "ws") for style-based models, ("z",) without W, () for image-to-image
    noise: bool                    # StyleGAN2: the noise maps may become inputs
    transform: bool                # StyleGAN3: the input transform may become an input
    class_center: bool             # conditional W models: truncation toward the class's centre
    directions: tuple[str, ...]    # image-to-image: the directions it translates


INPUT_LABELS = {"z": "z (and class) with ψ: the studio's truncation in the file",
                "ws": "W+ latents [N, num_ws, w_dim]: final, not truncated again"}
NOISE_LABELS = {"const": "fixed (the model's stored noise, baked in)", "input": "inputs (one map per layer)"}


def choices_for(info: ModelInfo) -> OnnxChoices:
    if info.translation:
        return OnnxChoices((), False, False, False, tuple(info.directions))
    has_w = info.num_ws > 0
    return OnnxChoices(("z", "ws") if has_w else ("z",), has_w and info.has_noise, has_w and info.transformable,
                       has_w and info.c_dim > 0, ())


def default_path(info: ModelInfo) -> str:
    """Beside the checkpoint, with its name: step-000500.safetensors -> step-000500.onnx."""
    return str(Path(info.path).with_suffix(".onnx"))


def onnx_job(checkpoint: str,
             out: str,
             input: str = "z",               # one of choices_for(info).inputs ("" for image-to-image)
             noise: str = "const",           # "const" or "input"
             transform_input: bool = False,  # StyleGAN3: the transform as an input
             center: str = "mean",           # "mean" or "class"
             direction: str | None = None,   # image-to-image: which way
             ):
    """The worker job (run(renderer, progress, preview) -> the report's text and path) that writes `out`."""
    def run(renderer, progress, preview) -> dict:
        from trainer.export import OnnxSettings, export_onnx
        settings = OnnxSettings(input=input or "z", noise=noise, transform_input=transform_input, center=center,
                                direction=direction)
        report = export_onnx(checkpoint, out, settings, progress)
        return {"path": report.path, "text": report.describe()}
    return run


__all__ = ["INPUT_LABELS", "JOB_NAME", "NOISE_LABELS", "OnnxChoices", "choices_for", "default_path", "onnx_job"]
