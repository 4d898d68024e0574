"""Translate panel, for image-to-image models (Pix2Pix, CycleGAN): open, drop or paste a picture,
or click one of the model's held-out inputs, and see it beside its translation, live; for
CycleGAN choose the direction and see the round trip too. The generator runs on the render
worker as a job; only numpy arrays and strings come back. A newer picture replaces one still
waiting, and an answer older than the one on screen is dropped."""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QTabWidget, QVBoxLayout, QWidget)

from trainer.images import make_grid
from trainer.inversion.photo import PhotoError, open_photo, photo_from_pixels

from ..engine.model_info import ModelInfo
from ..engine.translation import HELD_OUT_COUNT, HeldOutInputs, TranslationRequest, TranslationView, \
    held_out_inputs, run_translation
from .image_view import ImageView
from .invert_panel import PHOTO_FILTER

JOB_NAME, HELD_OUT_JOB = "translate", "held-out inputs"
HELD_OUT_COLUMNS = 8


class TranslatePanel(QWidget):
    translated = Signal(object)       # TranslationView, right after it went on screen
    strip_ready = Signal(object)      # uint8 [R, W, 3]: input | output (| round trip), for the big view

    def __init__(self,
                 workspace,           # the window's Workspace (the open checkpoint)
                 controller,          # RenderController: runs jobs on the worker that owns the model
                 parent=None,
                 ):
        super().__init__(parent)
        self.workspace = workspace
        self.controller = controller            # runs the generator on the thread that owns the model
        self.info: ModelInfo | None = None
        self.pixels: np.ndarray | None = None   # uint8 [H, W, 3] the picture being translated
        self.picture_name = ""
        self.view: TranslationView | None = None
        self.held_out: HeldOutInputs | None = None
        self.last_error = ""
        self._next_id = 0
        self._shown_id = 0
        self._running = False
        self._waiting: TranslationRequest | None = None

        # widgets
        self.open_button = QPushButton("Open picture…")
        self.paste_button = QPushButton("Paste")
        self.direction = QComboBox()
        # as wide as its longest entry: "A → B (edges → fashion)" was cut to "A → B (e"
        self.direction.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.round_trip = QCheckBox("Show the round trip (there and back)")
        self.input_view, self.output_view, self.round_trip_view = ImageView(), ImageView(), ImageView()
        self.input_caption, self.output_caption, self.round_trip_caption = QLabel("input"), QLabel("output"), \
            QLabel("round trip")
        for view in (self.input_view, self.output_view, self.round_trip_view):
            view.setMinimumSize(120, 120)
            view.setMaximumHeight(220)
        self.held_out_label = QLabel("Held-out inputs (click one):")
        self.held_out_label.setWordWrap(True)   # a data source's path, or why there are none, can be long
        self.held_out_view = ImageView()
        self.held_out_view.setMinimumHeight(110)
        self.held_out_view.setMaximumHeight(170)
        self.status = QLabel("Open an image-to-image checkpoint (Pix2Pix or CycleGAN) to translate pictures.")
        self.status.setWordWrap(True)
        self.timing = QLabel("")

        buttons = QHBoxLayout()
        for widget in (self.open_button, self.paste_button, QLabel("Direction:"), self.direction):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        views = QGridLayout()
        for column, (view, caption) in enumerate(((self.input_view, self.input_caption),
                                                  (self.output_view, self.output_caption),
                                                  (self.round_trip_view, self.round_trip_caption))):
            views.addWidget(view, 0, column)
            views.addWidget(caption, 1, column)
            views.setColumnStretch(column, 1)   # equal columns, whatever the captions say
            caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.round_trip)
        layout.addLayout(views)
        layout.addWidget(self.timing)
        layout.addWidget(self.held_out_label)
        layout.addWidget(self.held_out_view)
        layout.addWidget(self.status)
        layout.addStretch(1)

        # wiring
        self.open_button.clicked.connect(self._on_open_clicked)
        self.paste_button.clicked.connect(self._on_paste_clicked)
        self.direction.currentIndexChanged.connect(self._on_direction_changed)
        self.round_trip.toggled.connect(self._on_round_trip_changed)
        self.held_out_view.clicked.connect(self._on_held_out_clicked)
        self.set_model(None)

    # ---- model ----
    def set_model(self, info: ModelInfo | None) -> None:
        self.info = info if info is not None and info.translates else None
        usable = self.info is not None
        for widget in (self.open_button, self.paste_button, self.held_out_view):
            widget.setEnabled(usable)
        self.direction.blockSignals(True)
        self.direction.clear()
        if usable:
            a, b = (self.info.domains + ("A", "B"))[:2]
            names = {"AtoB": f"A → B ({a} → {b})", "BtoA": f"B → A ({b} → {a})"}
            for d in self.info.directions:
                self.direction.addItem(names[d], d)
        self.direction.blockSignals(False)
        self.direction.setEnabled(usable and self.direction.count() > 1)
        cyclegan = usable and len(self.info.directions) > 1
        self.round_trip.setVisible(cyclegan)
        self.round_trip.setChecked(cyclegan)
        for widget in (self.round_trip_view, self.round_trip_caption):
            widget.setVisible(cyclegan)
        self.view, self._waiting = None, None
        blank = np.full((8, 8, 3), 32, np.uint8)   # not ImageView.clear(): a cleared pyqtgraph item stays blank
        for view in (self.input_view, self.output_view, self.round_trip_view, self.held_out_view):
            view.set_image(blank)
        if not usable:
            return
        self.status.setText(f"{self.info.translation}: {self.info.img_resolution}×{self.info.img_resolution}, "
                            f"trained on {self.info.dataset or 'unknown data'}. Open or drop a picture, or click "
                            "a held-out input.")
        from_held_out = self.pixels is None or self.picture_name.startswith("held-out")   # the old model's
        self._load_held_out(pick_first=from_held_out)
        if not from_held_out:   # the user's own picture stays, translated by the new model
            self._request()

    # ---- pictures ----
    def open_photo(self, path) -> bool:
        """Translate an image file; a bad file gets its message and changes nothing. -> success."""
        try:
            photo = open_photo(path)
        except PhotoError as exc:
            self._show_error(str(exc))
            return False
        return self.set_pixels(photo.pixels, str(path), photo.notes)

    def set_pixels(self, pixels: np.ndarray, name: str = "", notes=()) -> bool:
        """Translate uint8 pixels [H, W] or [H, W, 1|3|4]; -> success (False with a message)."""
        try:
            photo = photo_from_pixels(np.asarray(pixels), name)
        except PhotoError as exc:
            self._show_error(str(exc))
            return False
        self.pixels, self.picture_name = photo.pixels, name
        self.last_error = ""
        note_text = "; ".join((*notes, *photo.notes))
        self.status.setText(html.escape(f"{name or 'picture'}" + (f" — {note_text}" if note_text else "")))
        self._request()
        return True

    def _request(self) -> None:
        if self.info is None or self.pixels is None:
            return
        self._next_id += 1
        request = TranslationRequest(self._next_id, self.info.generation, self.pixels,
                                     self.direction.currentData() or self.info.directions[0],
                                     self.round_trip.isChecked() and self.round_trip.isVisible())
        if self._running:        # one job at a time: the newest waits, older waiting ones are dropped
            self._waiting = request
            return
        self._submit(request)

    def _submit(self, request: TranslationRequest) -> None:
        self._running = True
        self.controller.run_job(JOB_NAME, lambda renderer, progress, preview: run_translation(renderer, request),
                                self._on_translated, self._on_translation_failed, message="translating")

    def _next(self) -> None:
        self._running = False
        if self._waiting is not None:
            request, self._waiting = self._waiting, None
            self._submit(request)

    def _load_held_out(self, pick_first: bool) -> None:
        direction = self.direction.currentData() or self.info.directions[0]
        generation = self.info.generation

        def loaded(held: HeldOutInputs) -> None:
            if self.info is None or self.info.generation != generation:
                return
            self.held_out = held
            self.held_out_view.show()
            self.held_out_view.set_image(make_grid(held.images, HELD_OUT_COLUMNS, pad=1, pad_value=96))
            self.held_out_label.setText(f"Held-out inputs ({html.escape(held.source)}; click one):")
            if pick_first:
                self.set_pixels(held.images[0], "held-out input 1")

        def failed(message: str) -> None:
            self.held_out = None
            self.held_out_view.hide()   # an empty strip looked like inputs still on their way
            self.held_out_label.setText(message or "held-out inputs: cancelled")

        self.controller.run_job(HELD_OUT_JOB, lambda renderer, progress, preview:
                                held_out_inputs(renderer, direction, HELD_OUT_COUNT), loaded, failed,
                                message="reading held-out inputs")

    # ---- slots ----
    def _on_translated(self, view: TranslationView) -> None:
        self._next()
        if view.request_id <= self._shown_id:
            return               # a newer translation is on screen
        self._shown_id = view.request_id
        self.view = view
        self.input_view.set_image(view.input)
        self.output_view.set_image(view.output)
        if view.round_trip is not None:
            self.round_trip_view.set_image(view.round_trip)
        a, b = (self.info.domains + ("A", "B"))[:2] if self.info else ("A", "B")
        source, target = (a, b) if view.direction == "AtoB" else (b, a)
        self.input_caption.setText(f"input ({source})")
        self.output_caption.setText(f"output ({target})")
        self.round_trip_caption.setText(f"round trip ({source} → {target} → {source})")
        self.timing.setText(f"translated in {view.milliseconds:.1f} ms" +
                            (f" · {'; '.join(view.notes)}" if view.notes else ""))
        self.strip_ready.emit(view.strip())
        self.translated.emit(view)

    def _on_translation_failed(self, message: str) -> None:
        self._next()
        if message:
            self._show_error(message)

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open picture to translate", "", PHOTO_FILTER)
        if path:
            self.open_photo(path)

    def _on_paste_clicked(self) -> None:
        image = QApplication.clipboard().image()
        if image.isNull():
            self._show_error("The clipboard holds no image.")
            return
        image = image.convertToFormat(QImage.Format.Format_RGB888)
        rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        self.set_pixels(rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy(), "pasted image")

    def _on_direction_changed(self, _index: int) -> None:
        if self.info is None:
            return
        from_held_out = self.picture_name.startswith("held-out")
        self._load_held_out(pick_first=from_held_out)   # the other domain's inputs
        if not from_held_out:
            self._request()

    def _on_round_trip_changed(self, _on: bool) -> None:
        self._request()

    def _on_held_out_clicked(self, row: int, col: int) -> None:
        if self.held_out is None:
            return
        side = self.held_out.images.shape[1] + 1
        index = (row // side) * HELD_OUT_COLUMNS + col // side
        if index < len(self.held_out.images):
            self.set_pixels(self.held_out.images[index], f"held-out input {index + 1}")

    def _show_error(self, text: str) -> None:
        self.last_error = text
        self.status.setText(f"<span style='color:#e06060'>{html.escape(text)}</span>")


def apply_translation_mode(panels: QTabWidget, translate_panel: TranslatePanel, translates: bool) -> None:
    """An image-to-image model has no latent: only the Translate tab applies (and is shown);
    a latent model's tabs come back, without the Translate tab, when one opens again."""
    # Hidden, not only disabled: seven tabs do not fit the panel column, and a tab that can never
    # apply to the open model only pushes the ones that do out of sight.
    for index in range(panels.count()):
        applies = (panels.widget(index) is translate_panel) == translates
        panels.setTabEnabled(index, applies)
        panels.setTabVisible(index, applies)
    if translates:
        panels.setCurrentWidget(translate_panel)
    elif panels.currentWidget() is translate_panel:
        panels.setCurrentIndex(0)
