"""Property-based tests (hypothesis) for the readers of user input: command-line values, workspace
files, checkpoint metadata and run logs. Whatever comes in gives a result or a clear error of the
project's own type (a ValueError subclass with a message), never another exception."""
import json
import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from ganstudio.app import window_size
from ganstudio.engine.runlog import RunLog
from ganstudio.engine.workspace import Workspace, WorkspaceError
from conftest import export_tiny
from trainer import CheckpointError, ConfigError, RunConfig, load_generator
from trainer.files import JSONFileError, parse_json
from trainer.film.timeline import Timeline, TimelineError
from trainer.latents import LatentState, parse_seeds

# JSON values of every shape, small enough to stay quick
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# JSON text nested from a few levels to far past Python's recursion limit, and near-JSON garbage
deep_json = st.builds(lambda n, opener, inner: opener * n + inner + {"[": "]", '{"a": ': "}"}[opener] * n,
                      st.integers(1, 200_000), st.sampled_from(["[", '{"a": ']), st.sampled_from(["1", "[]", '"x"']))
json_texts = json_values.map(lambda v: json.dumps(v, allow_nan=True)) | deep_json | st.text(alphabet='[]{}":,1 \\a',
                                                                                            max_size=40)


@FAST
@given(st.text(alphabet=string.digits + ",- x\t", max_size=30))
def test_seed_lists(text):
    try:
        seeds = parse_seeds(text, limit=1000)
    except ValueError as exc:
        assert str(exc)
        return
    assert seeds and all(0 <= s < 2**32 for s in seeds) and len(seeds) <= 1000


@FAST
@given(st.text(max_size=16))
def test_window_sizes(text):
    import argparse
    try:
        width, height = window_size(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc)
        return
    assert 200 <= width <= 16384 and 200 <= height <= 16384


@FAST
@given(st.dictionaries(st.sampled_from(["data", "model", "train", "preset", "extra"]),
                       st.dictionaries(st.sampled_from(["kimg", "batch", "resolution", "loss", "g_lr", "seed",
                                                        "arch", "source", "width", "nonsense"]), json_values,
                                       max_size=4), max_size=4))
def test_run_configs(d):
    try:
        cfg = RunConfig.from_dict(d)
    except ConfigError as exc:
        assert str(exc)
        return
    assert cfg.train.kimg > 0 and cfg.train.batch >= 1 and math.isfinite(cfg.train.g_lr)


@FAST
@given(st.dictionaries(st.sampled_from(["seed", "class_index", "psi", "cutoff", "noise_mode", "mix_layers",
                                        "base_ws", "directions", "direction_offsets", "direction_layers",
                                        "grid_row_seeds", "truncation_center", "z_threshold", "checkpoint",
                                        "timeline_unknown"]), json_values, max_size=6))
def test_workspace_files(fields):
    d = {"format": "ganstudio.workspace", "version": 1, **fields}
    try:
        ws = Workspace.from_dict(json.loads(json.dumps(d, allow_nan=True)))
    except WorkspaceError as exc:
        assert str(exc)
        return
    assert Workspace.from_dict(ws.to_dict()).to_dict() == ws.to_dict()


@FAST
@given(st.dictionaries(st.sampled_from(["seed", "class_index", "psi", "cutoff", "noise_mode", "mix_mask", "ws",
                                        "mix_seed", "w_offset", "offset_layers", "other"]), json_values, max_size=5))
def test_latent_states(d):
    try:
        state = LatentState.from_dict(d)
    except ValueError as exc:
        assert str(exc)
        return
    assert LatentState.from_dict(state.to_dict()).to_dict() == state.to_dict()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = export_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", c_dim=3)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return path, load_file(str(path)), dict(f.metadata())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["format", "format_version", "arch", "config", "step", "kimg", "dataset",
                            "tensors_sha256"]),
       value=st.text(max_size=40) | json_texts | json_values.map(lambda d: json.dumps({"z_dim": d}))
       | st.integers(10**4, 10**10).map(lambda n: json.dumps({"arch": "stylegan2-compact", "z_dim": 16, "w_dim": n})))
def test_checkpoint_metadata(tmp_path, checkpoint, key, value):
    path, tensors, meta = checkpoint
    target = tmp_path / "edited.safetensors"
    save_file(tensors, str(target), metadata={**meta, key: value})
    try:
        G = load_generator(target)
    except CheckpointError as exc:
        assert "edited.safetensors" in str(exc)
        return
    assert G.checkpoint_info["step"] >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.fixed_dictionaries({"kind": st.sampled_from(["scalars", "metric", "status", "samples", "checkpoint", "x"]),
                           "step": st.integers(-5, 10**6) | st.floats() | st.text(max_size=3),
                           "kimg": st.floats() | st.integers(), "time": st.floats()},
                          optional={"values": st.dictionaries(st.sampled_from(["loss/D", "loss/G", "lr/G", "x"]),
                                                              st.floats() | st.text(max_size=4), max_size=3),
                                    "name": st.sampled_from(["fid", "kid", "collapse/alarm", ""]),
                                    "value": st.floats() | st.text(max_size=3),
                                    "state": st.sampled_from(["running", "finished", "failed", "odd"]),
                                    "message": st.text(max_size=20),
                                    "path": st.text(max_size=20)}).map(lambda d: json.dumps(d, allow_nan=True)),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1"))), max_size=25),
    st.integers(1, 64))
def test_run_logs(tmp_path, lines, chunk):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "events.jsonl").write_text("\n".join(lines), encoding="utf-8", errors="replace")
    log = RunLog(run)
    while log.poll(max_bytes=chunk):   # any chunking, any bytes: it reads, it never raises
        pass
    for series in [*log.scalars.values(), *log.metrics.values()]:
        assert series.column("step").ndim == 1 and len(series.column("value")) == len(series)
    assert isinstance(log.alerts, list) and log.state in ("unknown", "running", "finished", "stopped", "failed")


@FEWER
@given(json_texts)
def test_json_texts(text):
    """The one JSON reader: a value, or JSONFileError for text that is not JSON or nests too deeply."""
    try:
        parse_json(text, "text")
    except JSONFileError as exc:
        assert str(exc).startswith("text ")


@FEWER
@given(json_texts | st.dictionaries(st.sampled_from(["data", "model", "train", "task", "kind", "preset"]),
                                    json_values, max_size=4).map(json.dumps))
def test_config_texts(text):
    """config.json text of any shape or depth: a validated config or a ConfigError."""
    try:
        cfg = RunConfig.from_json(text)
    except ConfigError as exc:
        assert str(exc)
        return
    assert RunConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()


keyframes = st.lists(st.fixed_dictionaries({}, optional={
    "state": st.dictionaries(st.sampled_from(["seed", "psi", "class_index", "ws"]), json_values, max_size=2),
    "duration": st.floats() | st.integers(-5, 10**12) | json_values, "easing": st.sampled_from(["linear", "x"]) | json_values,
    "tracks": json_values, "z": json_values, "label": json_values}), max_size=3)


@FEWER
@given(st.fixed_dictionaries({"format": st.just("ganstudio.timeline"), "version": st.integers(-1, 3) | json_values},
                             optional={"fps": st.floats() | st.integers(-5, 10**6) | json_values, "keyframes": keyframes,
                                       "loop": json_values, "interpolation": json_values, "model": json_values,
                                       "noise_mode": json_values, "audio": json_values, "other": json_values}))
def test_timelines(d):
    """Timeline files of any content: a timeline of bounded length, or a TimelineError."""
    try:
        timeline = Timeline.from_dict(json.loads(json.dumps(d, allow_nan=True)))
    except TimelineError as exc:
        assert str(exc)
        return
    assert 0 < timeline.fps <= 240 and timeline.frame_count <= 1_000_000
    assert Timeline.from_dict(timeline.to_dict()).to_dict() == timeline.to_dict()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_json)
def test_timeline_files_nested_deeply(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("timeline") / "deep.timeline.json"
    path.write_text(text)
    with pytest.raises(TimelineError):
        Timeline.load(path)
