"""The live render loop (engine.frame_timing, engine.cuda_graphs): per-frame stage timings, no
per-frame hooks or weight copies, CUDA graphs only where CUDA exists, fp16 only as a CUDA candidate."""
import time

import numpy as np
import pytest
import torch
from conftest import export_tiny
from torch.utils._python_dispatch import TorchDispatchMode

from ganstudio.engine import render_settings as rs
from ganstudio.engine.controller import RenderController
from ganstudio.engine.cuda_graphs import GraphedSynthesis, graphs_wanted
from ganstudio.engine.frame_timing import STAGES, FrameTiming
from ganstudio.engine.layers import LayerChoice
from ganstudio.engine.renderer import MixingGrid, Renderer, RenderRequest
from ganstudio.engine.workspace import Workspace
from trainer.latents import LatentState, noise_layers


def open_tiny(tmp_path, arch="stylegan2", device="cpu"):
    renderer = Renderer(device)
    renderer.load(export_tiny(tmp_path / f"{arch}.safetensors", arch=arch, c_dim=0))
    return renderer


def render(renderer, request_id, **request):
    result = renderer.render(RenderRequest(request_id, renderer.generation, **request))
    assert not result.error, result.error
    return result


@pytest.mark.parametrize("arch", [pytest.param("stylegan2", marks=pytest.mark.slow), "dcgan"])
def test_stage_timings_exist_and_sum_to_at_most_the_frame(tmp_path, arch):
    renderer = open_tiny(tmp_path, arch)
    for i in range(1, 4):
        result = render(renderer, i, latent=LatentState(seed=i))
        timing = result.timing
        assert isinstance(timing, FrameTiming) and timing.clock == "cpu"
        assert [name for name, _ in timing.stages()] == list(STAGES)
        assert all(ms >= 0 for _, ms in timing.stages()) and timing.paint == 0   # paint: the controller's
        assert timing.synthesis > 0 and timing.copy > 0 and timing.request > 0
        assert (timing.mapping > 0) == (arch == "stylegan2")   # DCGAN has no mapping stage
        assert timing.total <= result.milliseconds
    grid = render(renderer, 9, grid=MixingGrid((1, 2), (3,))) if arch == "stylegan2" else None
    assert grid is None or grid.timing is None   # the stages are the live image's


def test_the_controller_times_the_paint_of_each_shown_frame(tmp_path):
    renderer = open_tiny(tmp_path)
    controller = RenderController.inline(Workspace(), renderer)
    controller.events.image.connect(lambda result: time.sleep(0.02))   # a slow window
    controller.open(renderer.info.path)
    shown = controller.last_result
    latest = controller.paint_clock.latest
    assert latest.paint >= 20 and latest.synthesis == shown.timing.synthesis
    assert all(name in latest.table() for name in STAGES) and "paint" in latest.describe()


def hook_count(G) -> int:
    from torch.nn.modules import module
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in G.modules())
    return hooks + len(module._global_forward_hooks) + len(module._global_forward_pre_hooks)


class ParameterCopies(TorchDispatchMode):
    """Counts ops that copy, convert or move a tensor whose storage is one of the model's weights
    (a `.to()` that changes nothing returns the weight itself and is not counted)."""
    COPIES = ("aten._to_copy.", "aten.to.", "aten.copy_.", "aten.clone.", "aten.contiguous.", "aten._copy_from")

    def __init__(self, G):
        super().__init__()
        self.weights = {t.data_ptr() for t in (*G.parameters(), *G.buffers())}
        self.copies: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if str(func).startswith(self.COPIES) and any(t.data_ptr() in self.weights for t in tensors) \
                and not (isinstance(out, torch.Tensor) and out.data_ptr() == tensors[0].data_ptr()
                         and not str(func).startswith("aten.copy_")):
            self.copies.append(str(func))
        return out


@pytest.mark.slow
def test_a_steady_state_frame_registers_no_hooks_and_copies_no_weights(tmp_path):
    renderer = open_tiny(tmp_path)
    G = renderer.G
    layer = next(iter(noise_layers(G)))
    photo = {layer: np.ones(tuple(noise_layers(G)[layer].noise_const.shape), np.float32)}
    frames = [dict(latent=LatentState(seed=1)),
              dict(latent=LatentState(seed=2, psi=0.5, noise=photo)),        # an inverted photo's noise
              dict(latent=LatentState(seed=3), layer=LayerChoice(layer, 0))]  # the layer view's hook
    for i, frame in enumerate(frames):   # each as the live loop repeats it: warm-up, then steady frames
        render(renderer, 10 * i + 1, **frame)   # the layer view puts its one hook on (or lets it go)
        hooks, pointers = hook_count(G), [t.data_ptr() for t in (*G.parameters(), *G.buffers())]
        registered = renderer.layer_capture.hooks_registered
        for k in range(2):
            with ParameterCopies(G) as copies:
                render(renderer, 10 * i + 2 + k, **frame)
            assert copies.copies == [], (frame, copies.copies)
            assert hook_count(G) == hooks and renderer.layer_capture.hooks_registered == registered
            assert [t.data_ptr() for t in (*G.parameters(), *G.buffers())] == pointers   # nothing moved or replaced


def test_cuda_graphs_are_chosen_only_where_cuda_exists(tmp_path):
    assert graphs_wanted("cuda", cuda_available=True) and graphs_wanted("cuda:0", cuda_available=True)
    assert not graphs_wanted("cuda", cuda_available=False)
    assert not graphs_wanted("cpu", cuda_available=True) and not graphs_wanted("mps", cuda_available=True)
    assert open_tiny(tmp_path).graphs is None   # a CPU renderer never tries
    graphs = GraphedSynthesis(warmup=2)
    assert [graphs.plan("a") for _ in range(4)] == ["eager", "eager", "capture", "capture"]  # no graph made here
    graphs._graph = object()   # as a capture leaves it
    assert graphs.plan("a") == "replay"
    assert graphs.plan("b") == "eager" and graphs._graph is None   # another shape or model: dropped
    graphs.failed.add("c")
    assert [graphs.plan("c") for _ in range(4)] == ["eager"] * 4   # a failed capture is not tried again


def test_fp16_is_a_candidate_on_cuda_only():
    on_cuda = rs.candidates("cuda")
    assert [c.label() for c in on_cuda] == ["fp32", "fp32, channels-last", "fp16", "fp16, channels-last"]
    assert [c.label() for c in rs.candidates("cpu", bf16=False)] == ["fp32", "fp32, channels-last"]
    assert any(c.bf16 for c in rs.candidates("cpu", bf16=True)) and not any(c.fp16 for c in rs.candidates("cpu"))
    assert rs.tunable("cpu") and rs.tunable("cuda") and not rs.tunable("cuda", half=True) and not rs.tunable("mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ["stylegan2", "stylegan3-t"])
def test_cuda_graph_replay_draws_what_eager_draws(tmp_path, arch):
    graphed, eager = open_tiny(tmp_path, arch, "cuda"), open_tiny(tmp_path, arch, "cuda")
    eager.graphs = None
    for i in range(6):   # warm-up, capture, replays; the latent changes every frame
        latent = LatentState(seed=i, psi=0.5 + 0.1 * i)
        a, b = render(graphed, i + 1, latent=latent), render(eager, i + 1, latent=latent)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1 and a.timing.clock == "cuda"
    assert graphed.graphs.captures == 1 and graphed.graphs.replays >= 3


@pytest.mark.slow
def test_the_benchmark_builds_live_loop_rows_from_the_engines_stages(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import render_latency
    path = export_tiny(tmp_path / "tiny.safetensors", arch="stylegan2", c_dim=0)
    row = render_latency.loop_row(path, "cpu", "fp32", graphs=True, frames=2)   # graphs asked for: none on CPU
    assert row["size"] == 16 and not row["graphs"] and row["fps"] > 0 and row["gflops"] > 0
    assert all(row[name] >= 0 for name in STAGES[:4]) and row["synthesis"] > 0
    peak = {"matmul fp32": 10.0, "conv fp32": 20.0}
    header, line = render_latency.loop_table([row], peak)
    assert "synthesis" in header and line.split()[:4] == ["cpu", "16", "fp32", "off"]
    assert line.endswith(f"{row['gflops'] / 20:7.0%} {'-':>8s}")   # no NVlabs timing for this model
    versus = {**row, "label": "exact paper256", "nvlabs_ms": 4 * row["synthesis"], "nvlabs_times": (3.0, 5.0)}
    _, line, note = render_latency.loop_table([versus], peak)
    assert line.startswith("exact paper256") and line.endswith("    0.25")
    assert note.startswith("NVlabs' synthesis, exact paper256") and "3.0 before ours and 5.0 after" in note
