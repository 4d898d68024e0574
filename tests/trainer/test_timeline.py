"""Timelines: the maths, deterministic frames equal to the studio's renders, files, export, the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.engine.renderer import Renderer, RenderRequest
from ganstudio.engine.workspace import Workspace, WorkspaceError
from conftest import export_tiny, write_beep
from conftest import needs_nvlabs_fixtures as needs_fixtures
from trainer import load_generator
from trainer.latents import LatentMapper, LatentState
from trainer.film.timeline import (EASINGS, Keyframe, LayerTrack, Timeline, TimelineError, catmull_rom_weights, ease,
                              model_signature, slerp)
from trainer.film.presets import class_tour, noise_loop, seed_walk, style_morph, truncation_sweep
from trainer.film.render import CHUNK_FRAMES, TimelineRenderer
from trainer.film.video import ExportError, ExportSettings, auto_size, export_timeline, read_video_info

CLI = [sys.executable, "-m", "trainer"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def G(tiny_path):
    return load_generator(tiny_path)


@pytest.fixture(scope="module")
def studio(tiny_path):
    """The studio's renderer on the same checkpoint: what the Explorer shows for a LatentState."""
    r = Renderer("cpu")
    r.load(tiny_path)
    return r


def studio_image(studio, state):
    result = studio.render(RenderRequest(1, studio.generation, state))
    assert not result.error, result.error
    return result.image


def mixed_timeline(G, **fields):
    """Keyframes of every kind: a seed, an explicit W+, a style mix with an offset, a class-centred one."""
    explicit = LatentMapper(G).ws([LatentState(seed=9, class_index=2)])[0].detach().numpy() * 0.9
    keys = (Keyframe(LatentState(seed=1, class_index=0), 0.5, "linear"),
            Keyframe(LatentState.explicit(explicit), 0.5, "ease-in-out"),
            Keyframe(LatentState(seed=4, class_index=1, psi=0.5, mix_seed=7, mix_mask=(False,) * 3 + (True,) * 3,
                                 w_offset=np.linspace(-1, 1, G.w_dim), offset_layers=(0, 4)), 0.5, "cubic"),
            Keyframe(LatentState(seed=5, class_index=2, truncation_center="class", psi=0.3), 0.5, "hold"))
    fields.setdefault("model", model_signature(G))
    return Timeline(keys, fps=10, **fields)


# ---- maths ----
@pytest.mark.parametrize("name", EASINGS)
def test_easings_are_exact_at_the_ends_and_never_go_back(name):
    t = np.linspace(0, 1, 1001)
    e = ease(name, t)
    assert e[0] == 0.0 and e[-1] == 1.0
    assert np.all(np.diff(e) >= 0)
    if name != "hold":
        assert 0 < ease(name, 0.5) < 1
    else:
        assert ease(name, 0.999) == 0.0


def test_slerp_keeps_unit_norm_exact_endpoints_and_constant_speed():
    torch.manual_seed(0)
    a, b = torch.randn(5, 64, dtype=torch.float64), torch.randn(5, 64, dtype=torch.float64)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    assert torch.equal(slerp(a, b, torch.zeros(5)), a) and torch.equal(slerp(a, b, torch.ones(5)), b)
    omega = torch.acos((a * b).sum(dim=1))
    for t in (0.1, 0.37, 0.5, 0.9):
        s = slerp(a, b, torch.full((5,), t))
        assert torch.allclose(s.norm(dim=1), torch.ones(5, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(torch.acos((a * s).sum(dim=1).clamp(-1, 1)), t * omega, atol=1e-9)
    # raw z of other lengths: the length moves linearly, and parallel vectors do not divide by zero
    z = slerp(3 * a[:1], 3 * a[:1], torch.tensor([0.5]))
    assert torch.allclose(z, 3 * a[:1])


def test_catmull_rom_weights_pass_through_the_keys():
    w = catmull_rom_weights(np.array([0.0, 0.3, 1.0]))
    assert np.array_equal(w[0], [0, 1, 0, 0]) and np.array_equal(w[2], [0, 0, 1, 0])
    assert np.allclose(w.sum(axis=-1), 1)


def test_frame_times_and_locate():
    keys = [Keyframe(LatentState(seed=s), d) for s, d in ((0, 1.0), (1, 0.5), (2, 2.0))]
    line = Timeline(keys, fps=10)
    assert line.keyframe_frames()[:3] == [0, 10, 15] and line.frame_count == 16
    assert line.locate(0) == (0, 0.0) and line.locate(5) == (0, 0.5) and line.locate(15) == (2, 0.0)
    looped = line.replace(loop=True)
    assert looped.frame_count == 35 and looped.locate(34) == (2, 19 / 20)
    with pytest.raises(IndexError):
        line.locate(16)


# ---- frames ----
def test_keyframes_render_exactly_as_the_studio_and_frames_repeat(G, studio):
    line = mixed_timeline(G)
    r = TimelineRenderer(G, line)
    frames = r.render_frames(range(line.frame_count))
    assert frames.shape == (line.frame_count, 16, 16, 3) and frames.dtype == np.uint8
    for i, k in enumerate(line.keyframes):
        assert np.array_equal(frames[r.key_frames[i]], studio_image(studio, k.state)), f"keyframe {i}"
    assert np.array_equal(frames[0], studio_image(studio, line.keyframes[0].state))
    assert np.array_equal(frames[-1], studio_image(studio, line.keyframes[-1].state))
    # the same frame, asked for alone, in another order, or by a new renderer: the same bytes
    again = TimelineRenderer(G, line).render_frames([13, 3, 7])
    assert np.array_equal(again, frames[[13, 3, 7]])
    assert np.array_equal(r.render_frames([3]), frames[[3]])
    # frames between keyframes really move, and "hold" holds until the cut
    assert not np.array_equal(frames[2], frames[3])
    hold_start = r.key_frames[3] if not line.loop else None
    assert hold_start == line.frame_count - 1


def test_a_photo_keyframe_keeps_its_fitted_noise_and_the_frames_blend_into_it(G, studio, tmp_path):
    from trainer.latents import noise_layers
    rng = np.random.RandomState(0)
    fitted = {name: rng.randn(*layer.noise_const.shape).astype(np.float32) for name, layer in noise_layers(G).items()}
    ws = LatentMapper(G).ws([LatentState(seed=3, class_index=1)])[0].detach().numpy()
    photo = LatentState.explicit(ws, noise=fitted)               # what an inversion hands the studio
    line = Timeline((Keyframe(LatentState(seed=1, class_index=0), 0.5, "linear"), Keyframe(photo, 0.5, "linear")),
                    fps=10, model=model_signature(G))
    r = TimelineRenderer(G, line)
    frames = r.render_frames(range(line.frame_count))
    key = r.key_frames[1]
    assert np.array_equal(frames[key], studio_image(studio, photo))          # drawn as the Invert panel drew it
    assert not np.array_equal(frames[key], studio_image(studio, photo.replace(noise=None)))
    # the frame before the photo is on its way there: its noise is part of the blend
    plain = TimelineRenderer(G, line.replace(keyframes=(line.keyframes[0], Keyframe(photo.replace(noise=None), 0.5,
                                                                                   "linear"))))
    assert not np.array_equal(frames[key - 1], plain.render_frames([key - 1])[0])
    assert np.array_equal(frames[0], plain.render_frames([0])[0])            # the seed keyframe is untouched
    line.save(tmp_path / "photo.timeline.json")
    again = Timeline.load(tmp_path / "photo.timeline.json")
    assert np.array_equal(again.keyframes[1].state.noise[next(iter(fitted))], fitted[next(iter(fitted))])
    with pytest.raises(ValueError, match="noise map"):
        LatentState.explicit(ws, noise={"layer": [[float("nan")]]})


def test_loop_returns_smoothly_to_the_first_keyframe(G, studio):
    line = seed_walk([2, 3, 4], seconds_per_key=0.4, fps=10, base=LatentState(class_index=1), G=G)
    r = TimelineRenderer(G, line)
    assert line.loop and line.frame_count == 12
    ws = r.frame_latents(range(line.frame_count))
    first = LatentMapper(G).ws([line.keyframes[0].state])
    assert torch.allclose(ws[0], first[0])
    step = (ws[1:] - ws[:-1]).norm(dim=(1, 2))
    closing = (first[0] - ws[-1]).norm()
    assert closing < step.max() * 1.5   # the last frame is one step before the first, not a jump


def test_seed_segments_travel_through_z_and_blend_the_class(G):
    line = class_tour(3, seed=6, fps=10, seconds_per_key=1.0, base=LatentState(psi=1.0), G=G)
    r = TimelineRenderer(G, line)
    t = float(ease("ease-in-out", 0.5))
    ws = r.frame_latents([5])                              # halfway from class 0 to class 1
    z = LatentMapper(G).z([LatentState(seed=6)])
    soft = torch.tensor([[1 - t, t, 0.0]])
    assert torch.allclose(ws, G.mapping(z, soft), atol=1e-6)
    walk = seed_walk([1, 2], seconds_per_key=1.0, fps=10, base=LatentState(class_index=0, psi=1.0), G=G)
    za, zb = (LatentMapper(G).z([LatentState(seed=s)]) for s in (1, 2))
    expected = G.mapping(slerp(za, zb, torch.tensor([t])), torch.tensor([0]))
    assert torch.allclose(TimelineRenderer(G, walk).frame_latents([5]), expected, atol=1e-6)


def test_truncation_animates_and_layer_tracks_hold_the_fine_layers(G):
    sweep = truncation_sweep(seed=3, psi_from=0.0, psi_to=1.2, seconds=1.0, fps=10,
                             base=LatentState(class_index=0), G=G)
    ws = TimelineRenderer(G, sweep).frame_latents([0, 3, 10])
    w = LatentMapper(G).untruncated_ws([LatentState(seed=3, class_index=0)])
    for row, t in zip(ws, (0.0, 0.3, 1.0)):
        psi = 1.2 * float(ease("ease-in-out", t)) if t < 1 else 0.0   # frame 10 is the way back: ψ 1.2 -> 0
        psi = 1.2 if t == 1.0 else psi
        assert torch.allclose(row, G.w_avg.lerp(w[0], psi), atol=1e-5)
    morph = style_morph([1, 2], coarse_layers=2, seconds_per_key=1.0, fps=10, base=LatentState(class_index=0), G=G)
    r = TimelineRenderer(G, morph)
    quarter, three_quarters = r.frame_latents([2, 8])
    a, b = (LatentMapper(G).ws([k.state])[0] for k in morph.keyframes)
    assert torch.allclose(quarter[2:], a[2:], atol=1e-6) and not torch.allclose(quarter[:2], a[:2])
    assert torch.allclose(three_quarters[:2], b[:2], atol=1e-6) and not torch.allclose(three_quarters[2:], b[2:])


def test_presets_and_catmull_rom_render(G, studio):
    loop = noise_loop(G.z_dim, seed=2, keys=4, seconds=0.8, fps=10, base=LatentState(class_index=0), G=G)
    assert loop.interpolation == "catmull-rom" and loop.loop
    frames = TimelineRenderer(G, loop).render_frames(range(loop.frame_count))
    assert frames.shape[0] == 8 and len({f.tobytes() for f in frames}) == 8
    smooth = mixed_timeline(G, interpolation="catmull-rom", loop=True)
    r = TimelineRenderer(G, smooth)
    frames = r.render_frames(range(smooth.frame_count))
    for i, k in enumerate(smooth.keyframes):
        assert np.array_equal(frames[r.key_frames[i]], studio_image(studio, k.state))


def test_z_only_model_timeline(tmp_path):
    path = export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan", c_dim=3)
    G = load_generator(path)
    studio = Renderer("cpu")
    studio.load(path)
    line = seed_walk([0, 1, 2], seconds_per_key=0.3, fps=10, base=LatentState(z_threshold=1.5), G=G)
    r = TimelineRenderer(G, line)
    frames = r.render_frames(range(line.frame_count))
    for i, k in enumerate(line.keyframes):
        assert np.array_equal(frames[r.key_frames[i]], studio_image(studio, k.state))
    with pytest.raises(TimelineError, match="W space"):
        truncation_sweep(G=G)


# ---- files ----
def test_timeline_file_and_workspace_round_trip_exactly(G, tmp_path):
    line = mixed_timeline(G, loop=True, checkpoint="tiny.safetensors", checkpoint_sha256="ab" * 32,
                          model={"z_dim": 16, "c_dim": 3, "num_ws": 6, "w_dim": 16, "img_resolution": 16})
    line = line.replace(keyframes=line.keyframes[:2] + (line.keyframes[2].replace(
        tracks=(LayerTrack(0, 2, 0.0, 0.5), LayerTrack(2, None, 0.5, 1.0)), label="mix"),) + line.keyframes[3:])
    line.save(tmp_path / "a.timeline.json")
    again = Timeline.load(tmp_path / "a.timeline.json")
    assert again.to_dict() == line.to_dict()
    assert np.array_equal(again.keyframes[1].state.ws, line.keyframes[1].state.ws)
    assert again.keyframes[2].tracks == line.keyframes[2].tracks
    ws = Workspace(checkpoint="tiny.safetensors", timeline=line)
    ws.save(tmp_path / "w.json")
    back = Workspace.load(tmp_path / "w.json")
    assert back.timeline.to_dict() == line.to_dict() and back.to_dict() == ws.to_dict()
    assert json.loads((tmp_path / "w.json").read_text())["timeline"]["format"] == "ganstudio.timeline"
    # bad files: another format, a newer version, unknown fields, a bad keyframe inside a workspace
    d = line.to_dict()
    for bad, message in (({**d, "format": "x"}, "not a GAN Studio timeline"),
                         ({**d, "version": 2}, "newer than this GAN Studio reads"),
                         ({**d, "speed": 2}, "unknown field"),
                         ({**d, "keyframes": [{**d["keyframes"][0], "duration": 0}]}, "above 0")):
        with pytest.raises(TimelineError, match=message):
            Timeline.from_dict(bad)
    broken = ws.to_dict()
    broken["timeline"]["keyframes"][0]["duration"] = -1
    with pytest.raises(WorkspaceError, match="timeline.*above 0"):
        Workspace.from_dict(broken)


# ---- bad input ----
def test_bad_timelines_are_refused_with_a_message(G, tmp_path):
    for duration in (0, -1.0, float("nan")):
        with pytest.raises(TimelineError, match="duration"):
            Keyframe(LatentState(), duration)
    with pytest.raises(TimelineError, match="less than one frame"):
        Timeline((Keyframe(LatentState(), 0.01), Keyframe(LatentState(seed=1))), fps=30)
    wrong = Timeline((Keyframe(LatentState.explicit(np.zeros((5, 16), np.float32))),), fps=10)
    with pytest.raises(TimelineError, match=r"keyframe 1: its W\+ latent has shape \(5, 16\)"):
        TimelineRenderer(G, wrong)
    other = export_tiny(tmp_path / "uncond.safetensors", c_dim=0)
    made_here = seed_walk([0, 1], fps=10, G=G)
    with pytest.raises(TimelineError, match="c_dim = 3"):
        TimelineRenderer(load_generator(other), made_here)


def test_export_mp4_gif_png_decode_back(G, tmp_path):
    line = seed_walk([0, 1, 2], seconds_per_key=0.5, fps=12, base=LatentState(class_index=0), G=G)
    r = TimelineRenderer(G, line)
    report = export_timeline(r, ExportSettings(str(tmp_path / "walk.mp4"), size=64, resize_filter="bicubic"))
    info = read_video_info(report.path)
    assert info == {"frames": line.frame_count, "width": 64, "height": 64, "fps": 12.0, "codec": "h264"}
    gif = export_timeline(r, ExportSettings(str(tmp_path / "walk.gif"), size=32, resize_filter="nearest"))
    with Image.open(gif.path) as im:
        assert im.n_frames == line.frame_count and im.size == (32, 32)
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    frames = r.render_frames(range(line.frame_count))
    assert np.array_equal(first, frames[0].repeat(2, 0).repeat(2, 1))   # nearest x2, 256 colours suffice
    # left at its default size, a 16 px model's film is enlarged 16x to 256 px: whole pixels, nearest exact
    png = export_timeline(r, ExportSettings(str(tmp_path / "walk.png"), resize_filter="nearest"))
    files = sorted((tmp_path / "walk").glob("frame-*.png"))
    assert png.path == str(tmp_path / "walk") and len(files) == line.frame_count and png.size == 256
    assert np.array_equal(np.asarray(Image.open(files[7])), frames[7].repeat(16, 0).repeat(16, 1))
    native = export_timeline(r, ExportSettings(str(tmp_path / "native.gif"), size=G.img_resolution))
    assert native.size == 16
    grid = export_timeline([r, TimelineRenderer(G, line.with_seed_offset(10))],
                           ExportSettings(str(tmp_path / "grid.mp4")))
    assert read_video_info(grid.path)["width"] == 256                  # two 16 px cells side by side, x8
    assert [auto_size(n) for n in (16, 32, 100, 256, 1024)] == [256, 256, 300, 256, 1024]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.mp4", "native.gif", "walk", "walk.gif", "walk.mp4"]


def test_export_refuses_bad_settings_and_cancel_leaves_nothing(G, tmp_path):
    line = seed_walk([0, 1, 2], seconds_per_key=1.0, fps=12, G=G)
    r = TimelineRenderer(G, line)
    (tmp_path / "a-file").write_text("x")
    for settings, message in ((ExportSettings(str(tmp_path / "a-file" / "x.mp4")), "cannot make the folder"),
                              (ExportSettings(str(tmp_path / "x.avi")), ".mp4, .gif"),
                              (ExportSettings(str(tmp_path / "x.mp4"), size=4096), "1 to 2048"),
                              (ExportSettings(str(tmp_path / "x.mp4"), size=33), "even frame size"),
                              (ExportSettings(str(tmp_path / "x.gif"), resize_filter="magic"), "resize filter")):
        with pytest.raises(ExportError, match=message):
            export_timeline(r, settings)

    class Stop(Exception):
        pass

    def cancel_after_two_chunks(fraction, message):
        if fraction * line.frame_count / 0.98 > 2 * CHUNK_FRAMES:
            raise Stop()

    for name in ("film.mp4", "film.gif", "film"):
        with pytest.raises(Stop):
            export_timeline(r, ExportSettings(str(tmp_path / name)), cancel_after_two_chunks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], "a partial file was left"


def _run_python(code, **kw):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.slow
def test_full_disk_during_export_removes_the_partial_file(tiny_path, tmp_path):
    def limit_file_size():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    for name in ("film.mp4", "film.gif", "frames"):
        out = subprocess.run(CLI + ["render-video", "--checkpoint", str(tiny_path), "--preset", "seed-walk",
                                    "--seeds", "0-5", "--seconds-per-key", "1", "--fps", "12", "--size", "256",
                                    "--out", str(tmp_path / name)],
                             capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size)
        assert out.returncode == 1, out.stderr
        assert "partial file was removed" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert list(tmp_path.iterdir()) == [], f"{name}: left {list(tmp_path.iterdir())}"


@pytest.mark.slow
def test_missing_encoder_names_what_to_install_and_gif_png_still_work(tiny_path, tmp_path):
    code = f"""
import sys
sys.modules["av"] = None   # this machine has no PyAV: importing it fails, as on a bare install
from trainer import load_generator
from trainer.film.presets import seed_walk
from trainer.film.render import TimelineRenderer
from trainer.film.video import ExportError, ExportSettings, export_timeline
G = load_generator({str(tiny_path)!r})
r = TimelineRenderer(G, seed_walk([0, 1], seconds_per_key=0.5, fps=10, G=G))
try:
    export_timeline(r, ExportSettings({str(tmp_path / 'a.mp4')!r}))
except ExportError as exc:
    print("MP4:", exc)
print("GIF:", export_timeline(r, ExportSettings({str(tmp_path / 'a.gif')!r})).frames)
print("PNG:", export_timeline(r, ExportSettings({str(tmp_path / 'a')!r})).frames)
"""
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert "MP4: MP4 export needs PyAV" in out.stdout and "pip install av" in out.stdout
    assert "GIF: 10" in out.stdout and "PNG: 10" in out.stdout
    assert not (tmp_path / "a.mp4").exists()


# ---- the CLI ----
@pytest.mark.slow
def test_render_video_seed_walk_starts_with_generate_image(tiny_path, tmp_path):
    common = ["--checkpoint", str(tiny_path), "--psi", "0.6", "--trunc-center", "class"]
    gen = subprocess.run(CLI + ["generate", *common, "--seeds", "3", "--out", str(tmp_path / "g.png")],
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    film = subprocess.run(CLI + ["render-video", *common, "--preset", "seed-walk", "--seeds", "3-5",
                                 "--seconds-per-key", "0.5", "--fps", "8", "--filter", "nearest", "--out", str(tmp_path / "walk")],
                          capture_output=True, text=True, timeout=300)
    assert film.returncode == 0, film.stderr
    frames = sorted((tmp_path / "walk").glob("frame-*.png"))
    assert len(frames) == 12
    first, image = np.asarray(Image.open(frames[0])), np.asarray(Image.open(tmp_path / "g.png"))
    assert first.shape == (256, 256, 3) and np.array_equal(first, image.repeat(16, 0).repeat(16, 1))   # auto size


@pytest.mark.slow
def test_render_video_from_a_timeline_file_and_its_errors(G, tiny_path, tmp_path):
    line = mixed_timeline(G).replace(checkpoint="tiny.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(tiny_path.read_bytes())
    line.save(tmp_path / "a.timeline.json")
    out = subprocess.run(CLI + ["render-video", str(tmp_path / "a.timeline.json"), "--out", str(tmp_path / "a.mp4"),
                                "--size", "48", "--fps", "20"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert read_video_info(tmp_path / "a.mp4") == {"frames": line.replace(fps=20).frame_count, "width": 48,
                                                    "height": 48, "fps": 20.0, "codec": "h264"}
    (tmp_path / "tiny.safetensors").unlink()
    missing = subprocess.run(CLI + ["render-video", str(tmp_path / "a.timeline.json"), "--out", str(tmp_path / "b.gif")],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "checkpoint" in missing.stderr and "missing" in missing.stderr
    other = export_tiny(tmp_path / "other.safetensors", c_dim=0)
    wrong = subprocess.run(CLI + ["render-video", str(tmp_path / "a.timeline.json"), "--checkpoint", str(other),
                                  "--out", str(tmp_path / "b.gif")], capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "c_dim = 3" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (tmp_path / "b.gif").exists()


# ---- the studio's frame source, driven inline ----
def test_studio_frames_come_in_chunks_newest_wish_wins_and_match_headless(tiny_path, G):
    from ganstudio.engine.controller import RenderController
    from ganstudio.engine.timeline_frames import JOB_NAME, TimelineFrames
    controller = RenderController.inline(Workspace(), Renderer("cpu"))
    controller.open(tiny_path)
    line = seed_walk([0, 1, 2], seconds_per_key=1.0, fps=10, base=LatentState(class_index=0), G=G)
    arrived, errors = [], []
    frames = TimelineFrames(controller, lambda timeline, chunk: arrived.append(chunk), errors.append, linger_s=0)

    def wish_more(timeline, chunk):   # a wish made while a chunk is served replaces the waiting one
        arrived.append(chunk)
        if chunk == 0:
            frames.want(timeline, 2)
            frames.want(timeline, 3)

    frames.on_chunk = wish_more
    frames.want(line, 0)
    assert arrived == [0, 3] and not errors and not frames.busy and JOB_NAME not in controller.jobs_running
    headless = TimelineRenderer(G, line).render_frames([0, 5, 24, 29])
    assert all(np.array_equal(frames.frame(line, f), headless[i]) for i, f in enumerate((0, 5, 24, 29)))
    assert frames.frame(line, 10) is None                     # chunk 1 was never asked for
    assert frames.frame(line.replace(loop=False), 0) is None  # another timeline: the cache starts over


# ---- sound ----
@pytest.mark.slow
def test_sound_drives_psi_and_is_muxed_into_the_mp4(G, tiny_path, tmp_path):
    from trainer.film.audio import AUDIO_RATE, AudioMapping, AudioTrack, feature_curve, load_audio
    beep = write_beep(tmp_path / "beep.wav")
    samples = load_audio(beep)
    assert len(samples) == 2 * AUDIO_RATE
    loudness = feature_curve(samples, AUDIO_RATE, 10, 20, "loudness")
    onsets = feature_curve(samples, AUDIO_RATE, 10, 20, "onsets")
    assert loudness[:10].max() == 0 and loudness[10:].min() > 0.9
    assert onsets.argmax() == 10 and onsets[12:].max() < 0.1       # the tone starts at 1 s, once
    smooth = feature_curve(samples, AUDIO_RATE, 10, 20, "loudness", smoothing=0.3)
    assert 0 < smooth[10] < smooth[12] < smooth[19] <= 1           # a smoothed rise
    line = seed_walk([0, 1], seconds_per_key=1.0, fps=10, base=LatentState(class_index=0), G=G)
    loud = line.replace(audio=AudioTrack(str(beep), (AudioMapping("loudness", "psi", 0.8, 0.0),)))
    assert Timeline.from_dict(loud.to_dict()).to_dict() == loud.to_dict()
    quiet_frames = TimelineRenderer(G, line).render_frames(range(20))
    sound_frames = TimelineRenderer(G, loud).render_frames(range(20))
    assert all(np.array_equal(quiet_frames[i], sound_frames[i]) for i in range(1, 10))    # silence: no push
    assert not any(np.array_equal(quiet_frames[i], sound_frames[i]) for i in range(10, 20))
    report = export_timeline(TimelineRenderer(G, loud), ExportSettings(str(tmp_path / "loud.mp4")))
    import av
    with av.open(report.path) as container:
        kinds = sorted((s.type, s.codec_context.name) for s in container.streams)
        audio = container.streams.audio[0]
        assert kinds == [("audio", "aac"), ("video", "h264")]
        assert abs(float(audio.duration * audio.time_base) - 2.0) < 0.1
    # the CLI: a preset with --audio, and a missing sound file refused before anything renders
    out = subprocess.run(CLI + ["render-video", "--checkpoint", str(tiny_path), "--preset", "seed-walk", "--seeds", "0-1",
                                "--seconds-per-key", "1", "--fps", "10", "--audio", str(beep), "--audio-map",
                                "onsets:psi:0.5:0.1", "--out", str(tmp_path / "cli.mp4")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    missing = subprocess.run(CLI + ["render-video", "--checkpoint", str(tiny_path), "--preset", "seed-walk",
                                    "--audio", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "x.mp4")],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "no such sound file" in missing.stderr


# ---- StyleGAN3: films that pan and spin ----
def test_keyframes_keep_the_transform_in_files_and_refuse_bad_values(tmp_path):
    keys = (Keyframe(LatentState(seed=1), 1.0, "linear"),
            Keyframe(LatentState(seed=1, translate_x=0.25, translate_y=-0.1, rotate_deg=720.0), 1.0))
    line = Timeline(keys, fps=4)
    line.save(tmp_path / "spin.timeline.json")
    again = Timeline.load(tmp_path / "spin.timeline.json")
    assert again.to_dict() == line.to_dict() and again.keyframes[1].state.rotate_deg == 720.0
    d = line.to_dict()
    for key in d["keyframes"]:   # a file written before StyleGAN3: the identity
        for name in ("translate_x", "translate_y", "rotate_deg"):
            del key["state"][name]
    assert all(np.array_equal(k.state.transform, np.eye(3)) for k in Timeline.from_dict(d).keyframes)
    d["keyframes"][1]["state"]["rotate_deg"] = float("nan")
    with pytest.raises(TimelineError, match="rotate_deg"):
        Timeline.from_dict(d)


@needs_fixtures
@pytest.mark.slow
def test_a_stylegan3_film_pans_and_spins_between_keyframes(sg3_fixtures):  # noqa: F811 - the imported fixture
    """Frames between two keyframes of one seed (rotate 0 -> 90, translate 0 -> 0.25) are the studio's
    renders of the blended settings; the keyframes are the studio's renders of their own."""
    torch.set_num_threads(1)
    G = load_generator(sg3_fixtures / "sg3-t-cond10-32.safetensors")
    still = LatentState(seed=4, class_index=4, psi=0.7)
    keys = (Keyframe(still, 1.0, "linear"), Keyframe(still.replace(rotate_deg=90.0, translate_x=0.25), 1.0))
    renderer = TimelineRenderer(G, Timeline(keys, fps=4, model=model_signature(G)))
    frames = renderer.render_frames(range(renderer.frame_count))
    assert len(frames) == 5 and len({f.tobytes() for f in frames}) == 5   # every frame moves
    mapper = LatentMapper(G)
    from trainer.images import to_uint8
    with torch.no_grad():
        expected = np.concatenate([to_uint8(mapper.images([still.replace(rotate_deg=90.0 * t, translate_x=0.25 * t)]))
                                   for t in (0, 0.25, 0.5, 0.75, 1)])   # one at a time, as the studio draws
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(frames[0], expected[0]) and np.array_equal(frames[4], expected[4])
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))
