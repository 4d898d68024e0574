"""The render-settings probe (engine.render_settings): it measures, chooses settings whose pixels
match fp32, reports them, keeps the choice per machine and model, and can be switched off."""
import json
import math
import time

import pytest
import torch
from conftest import export_tiny

from ganstudio.engine import render_settings as rs
from ganstudio.engine.renderer import Renderer, RenderRequest
from trainer.latents import LatentState


@pytest.fixture
def probing(monkeypatch, tmp_path, one_thread):
    """Probing on, the cache in tmp_path, and every frame slow enough to be worth probing."""
    monkeypatch.setenv(rs.PROBE_ENV, "1")
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rs, "SLOW_FRAME_MS", 0.0)
    monkeypatch.setattr(rs, "PROBE_BUDGET_S", 0.2)
    monkeypatch.setattr(rs, "COMPILE", False)   # compiling has a test of its own
    yield tmp_path
    torch.set_num_threads(1)


def render(renderer, seed):
    result = renderer.render(RenderRequest(seed + 1, renderer.generation, LatentState(seed=seed)))
    assert not result.error, result.error
    return result


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["stylegan2-compact", "stylegan2"])
def test_the_probe_chooses_settings_that_match_fp32_and_says_which(probing, arch):
    path = export_tiny(probing / "tiny.safetensors", arch=arch, resolution=32)
    plain, tuned = Renderer("cpu"), Renderer("cpu", compile=False)
    plain.load(path)
    tuned.load(path)
    text, redraw = tuned.tune()
    settings = tuned.tuning.settings
    assert settings.measured and text.startswith("rendering on cpu: ") and f"{settings.speedup:.1f}x fp32" in text
    assert text.split(": ", 1)[1].startswith(settings.label()) and redraw == settings.bf16
    candidates = 4 if rs.native_bf16() else 2
    assert len(tuned.tuning.log) >= candidates + 2 and all("ms, PSNR" in line for line in tuned.tuning.log)
    assert settings.psnr >= rs.PSNR_FLOOR
    for seed in (0, 7):   # latents the probe never saw, drawn with the chosen settings
        assert rs.psnr(render(tuned, seed).image, render(plain, seed).image) >= rs.PSNR_FLOOR
    assert render(tuned, 3).settings == text


def test_fastest_keeps_the_default_unless_a_matching_setting_beats_it():
    default, bf16, wide = rs.RenderSettings(), rs.RenderSettings(bf16=True), rs.RenderSettings(channels_last=True)
    assert rs.fastest({default: (10.0, math.inf), bf16: (5.0, 41.0), wide: (7.0, math.inf)}, default) == bf16
    assert rs.fastest({default: (10.0, math.inf), bf16: (5.0, 39.0), wide: (7.0, math.inf)}, default) == wide
    assert rs.fastest({default: (10.0, math.inf), bf16: (9.8, 45.0)}, default) == default   # within the noise


@pytest.mark.slow
def test_the_choice_is_cached_per_machine_and_model(probing, monkeypatch):
    path = export_tiny(probing / "tiny.safetensors", resolution=16)
    first = Renderer("cpu")
    first.load(path)
    first.tune()
    stored = json.loads((probing / "cache" / "render_settings.json").read_text())
    (key, entry), = stored.items()
    assert rs.machine_key() in key and first.info.sha256 in key and entry["measured"]
    chosen = first.tuning.settings
    monkeypatch.setattr(rs, "measure", None)   # a second open must not measure again
    again = Renderer("cpu")
    again.load(path)
    again.tune()
    assert again.tuning.settings == chosen and again.tuning.log == []
    other = Renderer("cpu")
    other.load(export_tiny(probing / "other.safetensors", resolution=16, seed=1))
    with pytest.raises(TypeError, match="NoneType"):   # another model has no entry: it would be measured
        other.tune()


def test_a_choice_cached_under_older_probe_rules_is_measured_again(monkeypatch, tmp_path):
    """A cache entry from before the fast-frame rule (no `rules` field) said bf16 for a model whose
    fp32 frame is fast: it is not applied; the model is measured under today's rules."""
    monkeypatch.setenv(rs.PROBE_ENV, "1")
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path))
    monkeypatch.setattr(rs, "SLOW_FRAME_MS", 1e9)   # today's rule for this model: keep fp32
    renderer = Renderer("cpu")
    renderer.load(export_tiny(tmp_path / "tiny.safetensors"))
    key = f"{rs.machine_key()} | {renderer.info.sha256} | cpu"
    stale = {"bf16": True, "channels_last": True, "compiled": False, "threads": 1, "speedup": 2.1, "measured": True}
    (tmp_path / "render_settings.json").write_text(json.dumps({key: stale}))
    assert rs.read_cached(key) is None
    text, _ = renderer.tune()
    assert text == "rendering on cpu: fp32 (measured 1.0x fp32)"
    entry = json.loads((tmp_path / "render_settings.json").read_text())[key]
    assert entry["rules"] == rs.PROBE_RULES and not entry["bf16"]
    assert rs.read_cached(key) == rs.RenderSettings(measured=True)   # and is used from now on


def test_switched_off_it_renders_fp32_without_probe_or_cache(probing, monkeypatch):
    monkeypatch.setenv(rs.PROBE_ENV, "0")
    renderer = Renderer("cpu")
    renderer.load(export_tiny(probing / "tiny.safetensors"))
    assert renderer.tune() == ("", False)
    assert renderer.tuning.settings == rs.RenderSettings() and not (probing / "cache").exists()
    assert render(renderer, 0).settings == ""


def test_a_fast_frame_is_kept_fp32_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv(rs.PROBE_ENV, "1")
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path))
    monkeypatch.setattr(rs, "SLOW_FRAME_MS", 1e9)
    renderer = Renderer("cpu")
    renderer.load(export_tiny(tmp_path / "tiny.safetensors"))
    text, redraw = renderer.tune()
    assert text == "rendering on cpu: fp32 (measured 1.0x fp32)" and not redraw and renderer.tuning.log == []


@pytest.mark.slow
def test_the_compiled_graph_is_made_in_the_background_and_timed_before_use(probing, monkeypatch):
    monkeypatch.setattr(rs, "COMPILE", True)
    path = export_tiny(probing / "tiny.safetensors", resolution=32)
    plain, renderer = Renderer("cpu"), Renderer("cpu")
    plain.load(path)
    renderer.load(path)
    start = time.perf_counter()
    renderer.tune()
    assert time.perf_counter() - start < 20 and not renderer.tuning.settings.compiled   # the tune does not wait
    first = render(renderer, 0)   # frames render eager while the compiler works
    assert first.image is not None
    deadline = time.perf_counter() + 300
    while not renderer.tuning.trial_ready and time.perf_counter() < deadline:
        time.sleep(0.2)
    assert renderer.tuning.trial_ready
    result = render(renderer, 1)   # this frame times compiled against eager first
    assert not renderer.tuning.trial_ready and renderer.tuning.log[-1].startswith("compiled: ")
    used = renderer.tuning.settings.compiled
    assert ("not used" in renderer.tuning.log[-1]) != used and ("compiled" in result.settings) == used
    assert rs.psnr(result.image, render(plain, 1).image) >= rs.PSNR_FLOOR
