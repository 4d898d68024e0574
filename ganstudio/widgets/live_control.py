"""Live control in the window: the Render menu's OSC and MIDI items, the status-line counter, and the
MIDI mappings dialog. The decisions are engine.live's and engine.midi's; this module moves plain data
between threads (the OSC server's inbox, a MIDI port's callback) onto the GUI thread and shows counts.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QInputDialog, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from trainer.images import save_image

from ..engine.live import LiveActions, LiveControl
from ..engine.midi import CURVES, MidiMapper, MidiMapping, MidiMappingError, midi_input_names
from ..engine.osc_server import OscSender, OscServer, parse_host_port

DEFAULT_OSC_PORT = 9000
DEFAULT_SEND = "127.0.0.1:9001"


class LiveControlUi(QObject):
    osc_waiting = Signal()              # from the OSC server thread: the inbox has messages
    midi_message = Signal(object)       # from a MIDI port's thread: one mido Message (plain data)

    def __init__(self, window, render_menu):
        super().__init__(window)
        self.window = window
        player = window.timeline_panel.player
        self.live = LiveControl(window.workspace, window.controller, LiveActions(
            timeline_play=lambda on: player.play() if on else player.pause(),
            timeline_position=lambda x: player.seek(round(x * max(player.frame_count - 1, 0))),
            has_timeline=lambda: player.frame_count > 0,
            timeline_make=window.timeline_panel.make_preset,
            save_image=save_image), presets=window.presets_dock.player)
        self.midi = MidiMapper(self.live)
        self.server: OscServer | None = None
        self.sender: OscSender | None = None
        self.midi_port = None
        self.status_label = QLabel("")
        window.statusBar().addPermanentWidget(self.status_label)
        self.status_label.hide()
        # menu
        render_menu.addSeparator()
        self.listen_action = QAction("Listen for &OSC…", window, checkable=True)
        self.send_action = QAction("Send OSC &frames to…", window, checkable=True)
        render_menu.addAction(self.listen_action)
        render_menu.addAction(self.send_action)
        self.midi_menu = render_menu.addMenu("MIDI &input")
        self.midi_menu.aboutToShow.connect(self._fill_midi_menu)
        mappings_action = render_menu.addAction("MIDI &mappings…")
        # wiring: queued connections carry the threads' plain data onto this (the GUI) thread
        self.listen_action.triggered.connect(self._on_listen_triggered)
        self.send_action.triggered.connect(self._on_send_triggered)
        mappings_action.triggered.connect(lambda: MappingsDialog(self, window).show())
        self.osc_waiting.connect(self._on_osc_waiting, Qt.ConnectionType.QueuedConnection)
        self.midi_message.connect(self._on_midi_message, Qt.ConnectionType.QueuedConnection)
        window.frame_shown.connect(lambda r: self._on_frame(r.image, r.milliseconds, r.request_id))
        window.timeline_panel.frame_ready.connect(lambda image: self._on_frame(image, 0.0, None))
        window.presets_dock.panel.frame_ready.connect(lambda image: self._on_frame(image, 0.0, None))
        player.looped.connect(self._on_timeline_looped)

    # ---- OSC ----
    def listen(self, port: int, host: str = "127.0.0.1") -> int:
        """Listen for OSC on host:port (port 0: any free one); returns the port. OSError if taken."""
        self.stop_listening()
        self.server = OscServer(port, self.osc_waiting.emit, host)
        self.listen_action.setChecked(True)
        self._show_status(f"OSC on {host}:{self.server.port}")
        return self.server.port

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.listen_action.setChecked(False)

    def send_to(self, host: str, port: int) -> None:
        self.sender = OscSender(host, port)
        self.live.actions.send = self.sender.send
        self.send_action.setChecked(True)

    def stop_sending(self) -> None:
        self.sender = None
        self.live.actions.send = None
        self.send_action.setChecked(False)

    def close(self) -> None:
        self.stop_listening()
        self.close_midi()

    @Slot()
    def _on_osc_waiting(self) -> None:
        if self.server is not None:
            self.live.apply_all(self.server.take())   # every waiting message, one render
            self.window.presets_dock.panel.refresh()   # a preset saved, switched or its crossfade time set
            self._show_status()

    def _on_listen_triggered(self, on: bool) -> None:
        if not on:
            self.stop_listening()
            self._show_status()
            return
        port, ok = QInputDialog.getInt(self.window, "Listen for OSC", "UDP port on 127.0.0.1:", DEFAULT_OSC_PORT,
                                       1, 65535)
        self.listen_action.setChecked(False)
        if ok:
            try:
                self.listen(port)
            except OSError as exc:
                self.window._show_error("Cannot listen for OSC", f"port {port}: {exc}")

    def _on_send_triggered(self, on: bool) -> None:
        if not on:
            self.stop_sending()
            return
        text, ok = QInputDialog.getText(self.window, "Send OSC frames", "HOST:PORT", text=DEFAULT_SEND)
        self.send_action.setChecked(False)
        if ok:
            try:
                self.send_to(*parse_host_port(text))
            except (ValueError, OSError) as exc:
                self.window._show_error("Cannot send OSC", str(exc))

    # ---- MIDI ----
    def _fill_midi_menu(self) -> None:
        self.midi_menu.clear()
        names, problem = midi_input_names()
        if problem or not names:
            self.midi_menu.addAction(problem or "no MIDI input ports").setEnabled(False)
            return
        current = getattr(self.midi_port, "name", None)
        for name in names:
            action = self.midi_menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == current)
            action.triggered.connect(lambda on, n=name: self.open_midi(n) if on else self.close_midi())

    def open_midi(self, name: str) -> None:
        import mido
        self.close_midi()
        try:
            self.midi_port = mido.open_input(name, callback=self.midi_message.emit)   # called on rtmidi's thread
        except Exception as exc:   # rtmidi's own errors: a port that went away
            self.window._show_error("Cannot open MIDI input", f"{name}: {exc}")

    def close_midi(self) -> None:
        if self.midi_port is not None:
            self.midi_port.close()
            self.midi_port = None

    @Slot(object)
    def _on_midi_message(self, message) -> None:
        learnt = self.midi.feed(message)
        self.window.presets_dock.panel.refresh()
        self._show_status(f"MIDI: {learnt.kind} {learnt.control} drives {learnt.target}" if learnt else "")

    # ---- out and status ----
    def _on_frame(self, image, milliseconds: float, request_id) -> None:
        if self.live.actions.send is not None or self.live.pending_screenshots:
            self.live.frame_shown(image, milliseconds, request_id)
            self._show_status()

    def _on_timeline_looped(self, loops: int) -> None:
        if self.live.actions.send is not None:
            self.live.timeline_looped(loops)

    def _show_status(self, extra: str = "") -> None:
        text = self.live.status()
        self.status_label.setText(f"{extra} · {text}" if extra else text)
        self.status_label.setToolTip("\n".join(self.live.errors) or "no message refused")
        self.status_label.show()


class MappingsDialog(QDialog):
    """The MIDI table: learn a setting, edit ranges, curves and encoders, delete."""
    COLUMNS = ("setting", "control", "low", "high", "curve", "relative")

    def __init__(self, ui: LiveControlUi, parent=None):
        super().__init__(parent)
        self.setWindowTitle("MIDI mappings")
        self.ui = ui
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.target = QComboBox()
        self.learn_button = QPushButton("Learn: move a control")
        self.delete_button = QPushButton("Delete")
        self.message = QLabel(midi_input_names()[1] or "Pick a setting, press Learn, move a knob.")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        for w in (self.target, self.learn_button, self.delete_button):
            row.addWidget(w)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(620, 360)
        # wiring
        self.learn_button.clicked.connect(self._on_learn_clicked)
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.table.itemChanged.connect(self._on_item_changed)
        buttons.rejected.connect(self.close)
        ui.live.workspace.events.midi_mappings.connect(lambda _: self._refresh())
        self.target.addItems(sorted(ui.live.targets()))
        self._refresh()

    def _refresh(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for m in self.ui.midi.mappings:
            r = self.table.rowCount()
            self.table.insertRow(r)
            control = f"{m.kind} {m.control} ch {m.channel + 1}" if m.kind != "pitchwheel" else f"pitchwheel ch {m.channel + 1}"
            for c, text in enumerate((m.target, control, f"{m.low:g}", f"{m.high:g}", m.curve,
                                      "yes" if m.relative else "no")):
                item = QTableWidgetItem(text)
                if c < 2:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self.learn_button.setText("Learn: move a control" if self.ui.midi.learning is None
                                  else f"Learning {self.ui.midi.learning}: move a control…")

    def _on_learn_clicked(self) -> None:
        try:
            self.ui.midi.learn(self.target.currentText())
        except KeyError as exc:
            self.message.setText(str(exc.args[0]))
        self._refresh()

    def _on_delete_clicked(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        self.ui.midi.set_mappings([m for r, m in enumerate(self.ui.midi.mappings) if r not in rows])

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        mappings = self.ui.midi.mappings
        m = mappings[item.row()].to_dict()
        key, text = self.COLUMNS[item.column()], item.text().strip()
        try:
            if key in ("low", "high"):
                m[key] = float(text)
            elif key == "curve":
                m[key] = text if text in CURVES else "?"
            elif key == "relative":
                m[key] = text.lower() in ("yes", "true", "1", "on")
            mappings[item.row()] = MidiMapping.from_dict(m)
            self.message.setText("")
        except (ValueError, MidiMappingError) as exc:
            self.message.setText(f"not changed: {exc}")
        self.ui.midi.set_mappings(mappings)
        self._refresh()   # a refused edit shows the old value again
