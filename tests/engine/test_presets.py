"""Presets in the engine, on a real tiny StyleGAN2 through the inline controller and a fake clock:
a crossfade's frames are the timeline's interpolation between the two states, its end is the
preset exactly, a switch in the middle starts from the frame on screen; OSC and MIDI select
presets; the workspace file keeps them."""
import json

import mido
import numpy as np
import pytest

from ganstudio.engine.controller import RenderController
from ganstudio.engine.live import LiveControl
from ganstudio.engine.midi import MidiMapper
from ganstudio.engine.presets import FADE_FPS, PresetError, PresetPlayer, fade_timeline
from ganstudio.engine.from_workspace import latent_from_workspace
from ganstudio.engine.renderer import Renderer, RenderRequest
from ganstudio.engine.workspace import Workspace, WorkspaceError

from conftest import export_tiny


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("presets") / "tiny.safetensors")


@pytest.fixture
def player(tiny_checkpoint):
    """A PresetPlayer on a real controller with a tiny conditional StyleGAN2, two presets saved."""
    workspace = Workspace()
    controller = RenderController.inline(workspace, Renderer(device="cpu"))
    controller.open(tiny_checkpoint, restore=Workspace(directions={"PC1": np.ones(16, np.float32)}))
    shown = []
    player = PresetPlayer(workspace, controller, shown.append, clock=Clock(), linger_s=0)
    player.shown = shown
    workspace.update(seed=3, psi=0.5)
    player.save("calm")
    workspace.update(seed=8, psi=0.9, class_index=2, direction_offsets={"PC1": 2.0})
    player.save("wild")
    return player


def render_of(controller, workspace):
    """The image the explorer draws for `workspace`, rendered apart from the controller."""
    request = RenderRequest(10**6, controller.info.generation, latent_from_workspace(workspace, controller.info))
    return controller.backend.renderer.render(request).image


@pytest.mark.slow   # renders a crossfade's frames
def test_crossfade_frames_are_the_timelines_and_the_end_is_the_preset(player):
    ws, controller = player.workspace, player.controller
    start = latent_from_workspace(ws, controller.info)
    player.select("calm", seconds=1.0)
    assert player.fading and player.shown_frame == 0 and len(player.shown) == 1
    timeline = player.fade.timeline
    assert timeline.frame_count == int(FADE_FPS) + 1
    # the same two keyframes as a timeline the Timeline panel would play: the same frames
    expected = controller.backend.renderer.timeline_renderer(
        fade_timeline(start, player._preset_state(player.find("calm")), 1.0)).render_frames([0, 15, 29])
    player.clock.now += 0.5
    player.tick()
    assert player.shown_frame == 15
    np.testing.assert_array_equal(player.shown[-1], expected[1])
    np.testing.assert_array_equal(player.shown[0], expected[0])
    assert not np.array_equal(expected[1], expected[0]) and not np.array_equal(expected[1], expected[2])
    assert (ws.seed, ws.psi) == (8, 0.9)            # the workspace moves only at the end
    player.clock.now += 0.6
    assert player.tick() is False and not player.fading
    assert (ws.seed, ws.psi, ws.class_index, ws.direction_offsets) == (3, 0.5, 0, {})
    assert controller.last_result.request_id == controller.requested_id
    np.testing.assert_array_equal(controller.last_result.image, render_of(controller, Workspace(seed=3, psi=0.5,
                                  directions=ws.directions)))


@pytest.mark.slow   # renders two crossfades
def test_a_switch_mid_fade_starts_from_the_frame_on_screen(player):
    controller = player.controller
    player.select("calm", seconds=1.0)
    player.clock.now += 0.4
    player.tick()
    old, frame = player.fade.timeline, player.shown_frame
    assert frame == 12
    player.select("wild", seconds=2.0)
    start = player.fade.timeline.keyframes[0].state
    on_screen = controller.backend.renderer.timeline_renderer(old).frame_latents([frame])[0].numpy()
    np.testing.assert_array_equal(start.ws, on_screen)        # exactly where the old fade was
    assert player.fade.timeline.frame_count == 2 * int(FADE_FPS) + 1
    player.clock.now += 2.1
    player.tick()
    assert (player.workspace.seed, player.workspace.psi, player.workspace.class_index) == (8, 0.9, 2)


@pytest.mark.slow   # opens a model
def test_an_edit_stops_the_fade_and_zero_seconds_switches_at_once(player):
    ws = player.workspace
    player.select(1, seconds=1.0)
    ws.psi = 0.3                                     # the artist takes over
    assert not player.fading and ws.seed == 8
    requested = player.controller.renders_requested
    player.select("calm", seconds=0)
    assert not player.fading and (ws.seed, ws.psi) == (3, 0.5)
    assert player.controller.renders_requested == requested + 1   # one render for all the values
    with pytest.raises(PresetError, match="no preset named"):
        player.select("nothing")
    with pytest.raises(PresetError, match="crossfade"):
        player.select("calm", seconds=-1)


@pytest.mark.slow   # opens a model
def test_save_rename_delete(player):
    player.workspace.seed = 42
    player.save("calm")                              # same name: replaced in its place
    assert player.names == ["calm", "wild"] and player.find(1).values["seed"] == 42
    player.rename("calm", "intro")
    with pytest.raises(PresetError, match="exists"):
        player.rename("intro", "wild")
    with pytest.raises(PresetError, match="name"):
        player.save("  ")
    player.delete("wild")
    assert player.names == ["intro"]


@pytest.mark.slow   # opens a model
def test_osc_and_midi_select_presets(player):
    live = LiveControl(player.workspace, player.controller, presets=player)
    ws = player.workspace
    assert live.apply_all([("/ganstudio/preset_fade", (0.0,)), ("/ganstudio/preset/calm", ())]) == 0
    assert (ws.seed, ws.psi) == (3, 0.5) and player.current == "calm"
    assert live.apply_all([("/ganstudio/preset", ("wild",))]) == 0 and ws.seed == 8
    assert live.apply_all([("/ganstudio/preset", (1,))]) == 0 and ws.seed == 3
    refused = live.apply_all([("/ganstudio/preset", ("nothing",)), ("/ganstudio/preset", (3,)),
                              ("/ganstudio/preset/nothing", ()), ("/ganstudio/preset_fade", (-2.0,))])
    assert refused == 4 and ws.seed == 3
    assert "no preset named 'nothing'" in live.errors[0]
    # MIDI: learn a pad for "wild"; the press switches, the release does nothing
    midi = MidiMapper(live)
    midi.learn("preset/wild")
    midi.feed(mido.Message("note_on", channel=0, note=40, velocity=100))
    assert ws.seed == 3 and midi.mappings[0].target == "preset/wild"
    midi.feed(mido.Message("note_on", channel=0, note=40, velocity=90))
    assert ws.seed == 8
    ws.seed = 5
    midi.feed(mido.Message("note_off", channel=0, note=40))
    assert ws.seed == 5 and live.refused == 4


def test_presets_round_trip_through_the_workspace_file(tmp_path):
    from ganstudio.engine.presets import Preset
    ws = Workspace(seed=4, psi=0.6, base_ws=np.full((4, 16), 0.5, np.float32), mix_layers=(True, False),
                   direction_offsets={"PC1": 1.5}, translate_x=0.25)
    ws.presets = (Preset.capture("photo", ws), Preset.capture("two", Workspace(seed=9, cutoff=2)))
    ws.save(tmp_path / "w.json")
    back = Workspace.load(tmp_path / "w.json")
    assert [p.name for p in back.presets] == ["photo", "two"]
    a, b = ws.presets[0].values, back.presets[0].values
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) if k == "base_ws" else a[k] == b[k] for k in a)
    assert back.presets[1].values["cutoff"] == 2
    d = json.loads((tmp_path / "w.json").read_text())
    del d["presets"]                                  # a file from before presets
    assert Workspace.from_dict(d).presets == ()
    for bad, message in ([{"name": "x"}], "objects"), ([{"name": "", "values": {}}], "name"), \
            ([{"name": "a", "values": {}}, {"name": "a", "values": {}}], "two presets"), \
            ([{"name": "a", "values": {"psi": 9}}], "psi"), ([{"name": "a", "values": {"checkpoint": ""}}], "unknown"):
        d["presets"] = bad
        with pytest.raises(WorkspaceError, match=message):
            Workspace.from_dict(d)
