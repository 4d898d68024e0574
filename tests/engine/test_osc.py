"""Live control in the engine: OSC addresses change the workspace a slider changes (rendered by a real
tiny model through the inline controller), bad messages are counted and change nothing, the UDP
server hands real python-osc packets over as plain tuples, and MIDI messages (mido) drive settings
through the learnable table, which the workspace file keeps."""
import math
import socket
import time

import mido
import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from ganstudio.engine.controller import RenderController
from ganstudio.engine.live import FRAME_ADDRESS, LOOP_ADDRESS, MALFORMED, LiveControl
from ganstudio.engine.midi import MidiMapper, MidiMapping, MidiMappingError, encoder_ticks, midi_input_names
from ganstudio.engine.osc_server import OscSender, OscServer, parse_host_port
from ganstudio.engine.renderer import Renderer
from ganstudio.engine.workspace import Workspace, WorkspaceError

from conftest import export_tiny


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("live") / "tiny.safetensors")


@pytest.fixture
def live(tiny_checkpoint):
    """A LiveControl over a real controller with a tiny conditional StyleGAN2 open and two directions."""
    workspace = Workspace()
    controller = RenderController.inline(workspace, Renderer(device="cpu"))
    rng = np.random.RandomState(0)
    directions = {"PC1": rng.randn(16).astype(np.float32), "to tee": rng.randn(16).astype(np.float32)}
    controller.open(tiny_checkpoint, restore=Workspace(directions=directions))
    return LiveControl(workspace, controller)


@pytest.mark.slow   # opens and renders a model
def test_addresses_set_the_workspace_and_render_once_per_batch(live):
    ws, controller = live.workspace, live.controller
    before = controller.renders_requested
    refused = live.apply_all([("/ganstudio/seed", (5,)), ("/ganstudio/psi", (0.25,)), ("/ganstudio/class", (2,)),
                              ("/ganstudio/cutoff", (3.0,)), ("/ganstudio/direction/to_tee", (1.5,)),
                              ("/ganstudio/mix/2", (True,)), ("/ganstudio/direction/PC1", (-2,))])
    assert refused == 0 and live.applied == 7
    assert (ws.seed, ws.psi, ws.class_index, ws.cutoff) == (5, 0.25, 2, 3)
    assert ws.direction_offsets == {"to tee": 1.5, "PC1": -2.0}
    assert ws.mix_layers[2] and sum(ws.mix_layers) == 1
    assert controller.renders_requested == before + 1          # one render for the whole batch
    assert controller.last_result.request_id == controller.requested_id
    live.apply("/ganstudio/direction/PC1", (0,))
    live.apply("/ganstudio/cutoff", (0,))
    assert ws.direction_offsets == {"to tee": 1.5} and ws.cutoff is None   # as the panels: 0 = none


BAD_MESSAGES = [
    ("/ganstudio/nothing", (1,), "unknown address"),
    ("/ganstudio/timeline/make", ("nope",), "not a timeline preset"),
    ("/other/psi", (1,), "unknown address"),
    ("/ganstudio/psi", ("high",), "expected a number"),
    ("/ganstudio/psi", (math.nan,), "not a number"),
    ("/ganstudio/psi", (math.inf,), "not a number"),
    ("/ganstudio/psi", (2.5,), "out of range"),
    ("/ganstudio/psi", (), "expected one value"),
    ("/ganstudio/psi", (0.1, 0.2), "expected one value"),
    ("/ganstudio/seed", (-1,), "out of range"),
    ("/ganstudio/seed", (2.5,), "whole number"),
    ("/ganstudio/class", (3,), "out of range"),                  # the model has 3 classes
    ("/ganstudio/mix/40", (1,), "unknown address"),
    ("/ganstudio/translate_x", (0.1,), "unknown address"),       # StyleGAN3 only
    ("/ganstudio/direction/nope", (1.0,), "unknown address"),
    ("/ganstudio/screenshot", (5,), "expected a path"),
    ("/ganstudio/timeline/play", (1,), "no timeline"),
    (MALFORMED, (), "not OSC"),
]


def test_bad_messages_are_counted_and_change_nothing(live):
    before = live.workspace.to_dict()
    for count, (address, args, why) in enumerate(BAD_MESSAGES, 1):
        assert not live.apply(address, args)
        assert live.refused == count and live.applied == 0 and why in live.errors[-1], address
        assert live.workspace.to_dict() == before
        assert f"{count} refused" in live.status() and why in live.status()


@pytest.mark.slow   # opens and renders a model
def test_screenshot_saves_the_next_frame_of_a_request_made_after_it(live, tmp_path):
    saved = {}
    live.actions.save_image = lambda path, image: saved.setdefault(path, image)
    path = str(tmp_path / "a.png")
    live.apply_all([("/ganstudio/seed", (7,)), ("/ganstudio/screenshot", (path,))])
    [(waiting, first)] = live.pending_screenshots
    assert waiting == path and first == live.controller.requested_id - 1   # then the batch's own render
    image = live.controller.last_result.image
    live.frame_shown(image, 1.0, first - 1)           # an older render, still in flight when it was asked
    assert not saved and live.pending_screenshots
    live.frame_shown(image, 1.0, first + 1)
    assert saved[path] is image and not live.pending_screenshots


@pytest.mark.slow   # opens and renders a model
def test_a_bad_screenshot_path_is_a_refusal_not_a_crash(live, tmp_path):
    from trainer.images import save_image
    live.actions.save_image = save_image
    (tmp_path / "file").write_text("not a folder")
    live.apply("/ganstudio/screenshot", (str(tmp_path / "file" / "x.png"),))
    live.apply("/ganstudio/screenshot", (str(tmp_path / "x.unknown"),))
    live.frame_shown(live.controller.last_result.image, 1.0, live.controller.requested_id)
    assert live.refused == 2 and live.pending_screenshots == []


def test_the_server_hands_real_osc_packets_over_as_plain_tuples():
    woken = []
    server = OscServer(0, lambda: woken.append(1))
    try:
        client = SimpleUDPClient("127.0.0.1", server.port)
        client.send_message("/ganstudio/psi", 0.5)
        client.send_message("/ganstudio/screenshot", "/tmp/x.png")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x00garbage", ("127.0.0.1", server.port))
        messages, deadline = [], time.monotonic() + 5
        while len(messages) < 3 and time.monotonic() < deadline:
            messages += server.take()
            time.sleep(0.01)
    finally:
        server.close()
    assert messages == [("/ganstudio/psi", (0.5,)), ("/ganstudio/screenshot", ("/tmp/x.png",)), (MALFORMED, ())]
    assert woken
    with pytest.raises(OSError):   # the port is taken while a server holds it
        other = OscServer(0, lambda: None)
        try:
            OscServer(other.port, lambda: None)
        finally:
            other.close()


@pytest.mark.slow   # opens and renders a model
def test_frames_and_loop_ends_go_out_to_a_listener(live):
    inbox = OscServer(0, lambda: None)
    try:
        live.actions.send = OscSender("127.0.0.1", inbox.port).send
        live.frame_shown(live.controller.last_result.image, 12.5, live.controller.requested_id)
        for loops in (1, 2):                    # the timeline player's `looped` signal
            live.timeline_looped(loops)
        got, deadline = [], time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += inbox.take()
            time.sleep(0.01)
    finally:
        inbox.close()
    assert got == [(FRAME_ADDRESS, (1, 12.5)), (LOOP_ADDRESS, (1,)), (LOOP_ADDRESS, (2,))]


def test_host_port_parsing():
    assert parse_host_port("127.0.0.1:9001") == ("127.0.0.1", 9001)
    for bad in ("9001", "host:", ":9001", "host:70000", "host:x"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


# ---- MIDI ----
def cc(control, value, channel=0):
    return mido.Message("control_change", channel=channel, control=control, value=value)


@pytest.mark.slow   # opens and renders a model
def test_midi_learn_then_the_knob_drives_the_setting(live):
    midi = MidiMapper(live)
    midi.learn("psi")
    learnt = midi.feed(cc(7, 64))
    assert learnt == MidiMapping("psi", "cc", 0, 7, 0.0, 1.0) and midi.learning is None
    assert live.workspace.psi != 64 / 127         # the learning move sets nothing
    midi.feed(cc(7, 127))
    assert live.workspace.psi == 1.0
    midi.feed(cc(7, 0))
    assert live.workspace.psi == 0.0
    midi.feed(cc(7, 100, channel=1))              # another channel: not this mapping
    midi.feed(cc(8, 100))
    assert live.workspace.psi == 0.0
    midi.learn("psi")                             # relearning moves the setting to the new knob
    midi.feed(cc(9, 1))
    assert [(m.target, m.control) for m in midi.mappings] == [("psi", 9)]
    with pytest.raises(KeyError):
        midi.learn("translate_x")                 # not a StyleGAN3


@pytest.mark.slow   # opens and renders a model
def test_midi_curves_ranges_notes_wheels_and_encoders(live):
    midi, ws = MidiMapper(live), live.workspace
    midi.set_mappings([MidiMapping("psi", "cc", 0, 1, 0.0, 2.0, curve="exponential"),
                       MidiMapping("direction/PC1", "pitchwheel", 2, 0, -4.0, 4.0),
                       MidiMapping("mix/1", "note", 0, 60),
                       MidiMapping("seed", "cc", 0, 2, 0, 127, relative=True, step=1 / 127),
                       MidiMapping("class", "cc", 0, 3, 0, 2)])
    midi.feed(cc(1, 64))
    assert ws.psi == pytest.approx(2 * (2 ** (4 * 64 / 127) - 1) / 15)   # finer near the bottom
    midi.feed(mido.Message("pitchwheel", channel=2, pitch=8191))
    assert ws.direction_offsets["PC1"] == 4.0
    midi.feed(mido.Message("note_on", note=60, velocity=100))
    assert ws.mix_layers[1]
    midi.feed(mido.Message("note_off", note=60))
    assert not ws.mix_layers[1]
    ws.seed = 10
    midi.feed(cc(2, 3))                           # three ticks up from where the seed is
    assert ws.seed == 13
    midi.feed(cc(2, 126))                         # two ticks down (two's complement)
    assert ws.seed == 11
    midi.feed(cc(3, 70))                          # a whole-number setting takes the nearest whole number
    assert ws.class_index == 1
    midi.feed(mido.Message("clock"))
    assert live.refused == 0
    assert [encoder_ticks(v) for v in (0, 1, 63, 64, 65, 127)] == [0, 1, 63, -64, -63, -1]


@pytest.mark.slow   # opens and renders a model
def test_midi_mappings_are_saved_in_the_workspace_file(live, tmp_path):
    MidiMapper(live).set_mappings([MidiMapping("psi", "cc", 3, 21, 0.2, 0.9, "exponential", True, 0.05)])
    path = tmp_path / "ws.json"
    live.workspace.save(path)
    again = Workspace.load(path)
    assert [MidiMapping(**d) for d in again.midi_mappings] == [MidiMapping("psi", "cc", 3, 21, 0.2, 0.9,
                                                                           "exponential", True, 0.05)]
    d = again.to_dict()
    del d["midi_mappings"]                        # a file from before MIDI opens with no mappings
    assert Workspace.from_dict(d).midi_mappings == ()
    for bad in ([{"target": "psi", "kind": "cc", "channel": 16}], [{"target": "psi", "kind": "knob", "channel": 0}],
                [{"target": "psi", "kind": "cc", "channel": 0, "high": float("nan")}],
                [{"target": "psi", "kind": "note", "channel": 0, "relative": True}],
                [{"target": "psi", "kind": "cc", "channel": 0, "colour": "red"}], "psi"):
        with pytest.raises(WorkspaceError, match="midi_mappings"):
            Workspace.from_dict({**d, "midi_mappings": bad})
    with pytest.raises(MidiMappingError):
        MidiMapping.from_dict({"target": "", "kind": "cc", "channel": 0})


def test_without_a_midi_system_the_port_list_says_why():
    names, problem = midi_input_names()
    assert isinstance(names, list)
    if not names:   # this machine and CI: no ALSA sequencer
        assert problem
