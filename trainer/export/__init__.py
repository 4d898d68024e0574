"""Exporting a generator for other tools: ONNX files that onnxruntime (and what builds on it:
TouchDesigner, game engines, web runtimes) runs. `export_onnx(checkpoint, out, OnnxSettings(...))`
writes one; `check_onnx` compares it with the PyTorch model. docs/export.md is the manual."""
from trainer.export.onnx_file import (CENTERS, INPUTS, NOISE_MODES, OPSET, OnnxReport, OnnxSettings, check_onnx,
                                      export_onnx, graph_for)

__all__ = ["CENTERS", "INPUTS", "NOISE_MODES", "OPSET", "OnnxReport", "OnnxSettings", "check_onnx", "export_onnx",
           "graph_for"]
