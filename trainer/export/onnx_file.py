"""A checkpoint -> an ONNX file that onnxruntime (CPU and CUDA providers) runs, and the check
that the file draws what the PyTorch model draws.

The graph is traced with PyTorch's TorchScript-based exporter (`torch.onnx.export(...,
dynamo=False)`): the torch.export-based one needs the onnxscript package and gains nothing for
these fixed-control-flow generators. Opset 17: the graphs hold standard ops only (Conv, Gemm,
ConvTranspose, MatMul, Pad, Resize, elementwise), which onnxruntime's CPU provider runs (tested) and its
CUDA provider implements (not run here: no GPU build of onnxruntime on these machines). The batch
axis is dynamic; what each kind of model takes and returns is in trainer.export.graphs and
docs/export.md.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer.export.graphs import LatentGraph, TranslationGraph, ZGraph, traceable
from trainer.files import atomic_write

OPSET = 17
INPUTS = ("z", "ws")              # latent GANs: z (and c) with psi, or the final W+ latents
NOISE_MODES = ("const", "input")  # StyleGAN2 noise: the stored maps baked in, or one input per layer
CENTERS = ("mean", "class")       # truncation toward w_avg, or toward the class's centre
TRACE_BATCH = 2                   # rows traced with: neither 1 nor the tests' 3, so a fixed batch would show


@dataclass(frozen=True)
class OnnxSettings:
    input: str = "z"                  # "z" or "ws" (style-based models only)
    noise: str = "const"              # "const" or "input"
    transform_input: bool = False     # StyleGAN3: the [3, 3] input transform as an input (else the stored one)
    center: str = "mean"              # truncation centre: "mean" (w_avg) or "class" (conditional models)
    cutoff: int | None = None         # truncate layers [0, cutoff); None = every layer
    direction: str | None = None      # CycleGAN: which generator (None: the model's own direction)
    opset: int = OPSET


@dataclass(frozen=True)
class OnnxReport:
    path: str
    arch: str
    inputs: dict[str, list]           # name -> shape ("batch" etc. for dynamic axes)
    outputs: dict[str, list]
    opset: int
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        shape = lambda dims: "[" + ", ".join(map(str, dims)) + "]"
        lines = [f"wrote {self.path} ({self.arch}, opset {self.opset}, {self.seconds:.1f} s)"]
        lines += [f"  input  {name:16s} {shape(dims)}" for name, dims in self.inputs.items()]
        lines += [f"  output {name:16s} {shape(dims)}" for name, dims in self.outputs.items()]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def graph_for(G: torch.nn.Module, settings: OnnxSettings, progress=None) -> tuple[torch.nn.Module, list[str]]:
    """The module to trace for G under these settings -> (graph, notes). Raises ValueError for
    settings the model cannot honour."""
    from trainer.latents import LatentMapper, has_input_transform, noise_layers
    from trainer.translation import directions, is_translation_model
    if settings.input not in INPUTS or settings.noise not in NOISE_MODES or settings.center not in CENTERS:
        raise ValueError(f"input must be one of {INPUTS}, noise one of {NOISE_MODES}, center one of {CENTERS}")
    notes = []
    if is_translation_model(G):
        direction = settings.direction or G.direction
        if direction not in directions(G):
            raise ValueError(f"this model translates {' and '.join(directions(G))} only, not {direction}")
        return TranslationGraph(G, direction).eval(), [f"translates {direction}"]
    if settings.direction:
        raise ValueError("--direction is for image-to-image models (Pix2Pix, CycleGAN)")
    if not getattr(G, "num_ws", 0):
        if settings.input == "ws":
            raise ValueError("this model has no W space: it takes z only (--input z)")
        notes.append("no W space: no psi input (truncate z by drawing it from a truncated normal)")
        return ZGraph(G).eval(), notes
    if settings.center == "class" and not G.c_dim:
        raise ValueError("--center class needs a conditional model")
    if settings.cutoff is not None and not 0 < settings.cutoff <= G.num_ws:
        raise ValueError(f"cutoff must be in 1..{G.num_ws}, got {settings.cutoff}")
    if settings.noise == "input" and not noise_layers(G):
        notes.append("this model has no noise inputs (StyleGAN3 has none): --noise input adds nothing")
    if settings.transform_input and not has_input_transform(G):
        raise ValueError("only StyleGAN3 models have an input transform")
    centers = None
    if settings.center == "class" and settings.input == "z":
        centers = LatentMapper(G).class_means(progress).detach().clone()
        notes.append("truncation toward each class's mean w, estimated as the studio does")
    if settings.input == "ws":
        notes.append("ws are final: no truncation in the graph")
    graph = LatentGraph(G, settings.input, settings.noise == "input", settings.transform_input, centers,
                        settings.cutoff)
    return graph.eval(), notes


def export_onnx(checkpoint, out, settings: OnnxSettings = OnnxSettings(), progress=None) -> OnnxReport:
    """Write the generator of `checkpoint` (a file or run directory, or a loaded generator) as an
    ONNX file at `out` (written to a temporary name, then renamed). progress(fraction, message)
    is called along the way. Raises ValueError for unusable settings, CheckpointError for the file."""
    from trainer.checkpoint import load_generator
    import onnx
    start = time.perf_counter()
    step = progress or (lambda fraction, message: None)
    step(0.0, "loading the checkpoint")
    G = load_generator(checkpoint) if not isinstance(checkpoint, torch.nn.Module) else checkpoint
    G = G.cpu().eval().requires_grad_(False)
    graph, notes = graph_for(G, settings, progress)
    names = graph.input_names()
    step(0.3, "tracing the graph")
    buffer, out_shape = _trace(graph, names, settings.opset)
    step(0.8, "checking and writing the file")
    model = onnx.load_model_from_string(buffer)
    for value, size in zip(model.graph.output, [out_shape]):   # the tracer leaves them symbolic
        for dim, n in zip(value.type.tensor_type.shape.dim[1:], size[1:]):
            dim.Clear()
            dim.dim_value = n
    onnx.checker.check_model(model)
    model.doc_string = f"GAN Studio {_arch(G)} generator; inputs {', '.join(names)}; output in [-1, 1]"
    out = Path(out)
    data = model.SerializeToString()
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(data))
    shapes = lambda values: {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    step(1.0, f"wrote {out.name}")
    return OnnxReport(str(out), _arch(G), shapes(model.graph.input), shapes(model.graph.output), settings.opset,
                      time.perf_counter() - start, tuple(notes))


def _trace(graph: torch.nn.Module, names: list[str], opset: int) -> tuple[bytes, tuple[int, ...]]:
    """-> (the ONNX model's bytes, the traced output's shape)"""
    import io
    out_name = "translated" if isinstance(graph, TranslationGraph) else "images"
    buffer = io.BytesIO()
    with warnings.catch_warnings(), traceable(), torch.no_grad():
        # shape checks in the models are evaluated once while tracing (they hold for any batch);
        # the TorchScript exporter's deprecation notice is not the user's concern
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # a reversed slice (CycleGAN's reflection padding) stays a node instead of a folded constant
        warnings.filterwarnings("ignore", "Constant folding", UserWarning)
        inputs = graph.example_inputs(TRACE_BATCH)
        out_shape = tuple(graph(*inputs).shape)
        torch.onnx.export(graph, inputs, buffer, input_names=names,
                          output_names=[out_name], dynamic_axes={**graph.dynamic_axes(), out_name: {0: "batch"}},
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    return buffer.getvalue(), out_shape


def _arch(G) -> str:
    return (getattr(G, "checkpoint_info", None) or {}).get("config", {}).get("arch", type(G).__name__)


def check_onnx(path, checkpoint, settings: OnnxSettings = OnnxSettings(), batch: int = 3, seed: int = 0) -> float:
    """Run the file with onnxruntime (CPU) and the PyTorch model on the same random inputs (psi 0.5
    where there is one) -> the largest absolute difference of the outputs."""
    import onnxruntime as ort
    from trainer.checkpoint import load_generator
    G = load_generator(checkpoint) if not isinstance(checkpoint, torch.nn.Module) else checkpoint
    graph, _ = graph_for(G.cpu().eval(), settings)
    torch.manual_seed(seed)
    inputs = list(graph.example_inputs(batch))
    if "psi" in graph.input_names():
        inputs[graph.input_names().index("psi")] = torch.full([1], 0.5)
    with torch.no_grad():
        expected = graph(*inputs).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {name: t.numpy() for name, t in zip(graph.input_names(), inputs)})
    return float(np.abs(actual - expected).max())


__all__ = ["CENTERS", "INPUTS", "NOISE_MODES", "OPSET", "OnnxReport", "OnnxSettings", "check_onnx", "export_onnx",
           "graph_for"]
