"""Style-mixing panel: per-layer sources (seed or style seed) with coarse / middle / fine presets,
a grid of row seeds x column seeds showing the mixes, and committing a mix as the current W+."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QVBoxLayout, QWidget)

from trainer.latents import layer_groups, parse_seeds
from ..engine.from_workspace import grid_from_workspace
from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace
from .seed_box import SeedBox
from .image_view import ImageView

MAX_GRID_SEEDS = 8
PHOTO_PLACES = (("", "not in the grid"), ("row", "as the first row"), ("column", "as the first column"))
PHOTO_TIP = ("The photo inverted in the Invert panel, as a row (the photo with each column's checked layers) "
             "or a column (the photo's checked layers on every row seed)")
NO_PHOTO_TIP = "Invert a photo (Invert tab) to mix it here"


def parse_grid_seeds(text: str) -> tuple[int, ...]:
    """"0-3, 7" -> (0, 1, 2, 3, 7), at most MAX_GRID_SEEDS. Raises ValueError with a readable message."""
    return tuple(parse_seeds(text, limit=MAX_GRID_SEEDS))


def format_seeds(seeds) -> str:
    return ", ".join(str(s) for s in seeds)


class MixingPanel(QWidget):
    commit_requested = Signal()            # "use this mix as the current latent"
    cell_chosen = Signal(int, int)         # grid cell (row, col) to take as the current latent

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.layer_buttons: list[QPushButton] = []
        self.info: ModelInfo | None = None
        self.presets: dict[str, tuple[bool, ...]] = {}
        self.cell_size = 0
        # widgets
        self.mix_seed = SeedBox()
        self.mix_seed.setToolTip("The second source: checked layers take their w from this seed")
        self.layer_box = QGroupBox("Layers taken from the style seed")
        self.layer_grid = QGridLayout(self.layer_box)
        self.preset_buttons = {name: QPushButton(name.capitalize()) for name in ("coarse", "middle", "fine")}
        self.clear_button = QPushButton("None")
        self.commit = QPushButton("Use this mix as the current latent")
        self.commit.setToolTip("The mixed W+ replaces the seed's latent for further edits (ψ, directions)")
        self.row_seeds = QLineEdit()
        self.col_seeds = QLineEdit()
        self.row_seeds.setToolTip("Rows keep their own unchecked layers, e.g. 0-3")
        self.col_seeds.setToolTip("Columns supply the checked layers, e.g. 10-13")
        self.grid_photo = QComboBox()
        for place, text in PHOTO_PLACES:
            self.grid_photo.addItem(text, place)
        self.grid_caption = QLabel()
        self.grid_caption.setWordWrap(True)
        self.grid_error = QLabel()
        self.grid_error.setStyleSheet("color: #e06c5a")
        self.grid_view = ImageView()
        self.grid_view.setMinimumHeight(200)   # the whole panel must fit a 600 px tall window
        self.grid_view.setToolTip("Click a mix to make it the current latent; click a seed image to pick that seed")
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Presets"))
        for button in (*self.preset_buttons.values(), self.clear_button):
            preset_row.addWidget(button)
        form = QFormLayout()
        form.addRow("Style seed", self.mix_seed)
        grid_form = QFormLayout()
        grid_form.addRow("Row seeds", self.row_seeds)
        grid_form.addRow("Column seeds", self.col_seeds)
        grid_form.addRow("Inverted photo", self.grid_photo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.layer_box)
        layout.addLayout(preset_row)
        layout.addWidget(self.commit)
        layout.addLayout(grid_form)
        layout.addWidget(self.grid_caption)
        layout.addWidget(self.grid_error)
        layout.addWidget(self.grid_view, 1)

        # wiring
        self.mix_seed.valueChanged.connect(self._on_mix_seed_changed)
        for name, button in self.preset_buttons.items():
            button.clicked.connect(lambda _=False, n=name: self._on_preset_chosen(n))
        self.clear_button.clicked.connect(lambda: self._on_preset_chosen(""))
        self.commit.clicked.connect(self.commit_requested)
        self.row_seeds.editingFinished.connect(self._on_grid_seeds_changed)
        self.col_seeds.editingFinished.connect(self._on_grid_seeds_changed)
        self.grid_view.clicked.connect(self._on_grid_clicked)
        self.grid_photo.currentIndexChanged.connect(self._on_grid_photo_changed)
        events = workspace.events
        events.mix_seed.connect(lambda v: self._show())
        events.mix_layers.connect(lambda v: self._show())
        events.grid_row_seeds.connect(lambda v: self._show())
        events.grid_col_seeds.connect(lambda v: self._show())
        events.photo_ws.connect(lambda v: self._show())
        events.grid_photo.connect(lambda v: self._show())
        self.set_model(None)

    def set_model(self, info: ModelInfo | None) -> None:
        for button in self.layer_buttons:
            self.layer_grid.removeWidget(button)
            button.deleteLater()
        self.layer_buttons = []
        self.info = info
        has_w = bool(info and info.has_w)
        self.setEnabled(has_w)
        self.layer_box.setTitle("Layers taken from the style seed" if has_w or info is None
                                else "Style mixing needs a model with a W space")
        if has_w:
            self.presets = layer_groups(list(info.layer_resolutions))
            per_row = 8
            for i, res in enumerate(info.layer_resolutions):
                button = QPushButton(f"{i}\n{res}px")
                button.setCheckable(True)
                button.setToolTip(f"ws layer {i}, feeds the {res}x{res} synthesis layer")
                button.toggled.connect(self._on_layer_toggled)
                self.layer_grid.addWidget(button, i // per_row, i % per_row)
                self.layer_buttons.append(button)
        self._show()

    def show_grid(self, image, cell_size: int) -> None:
        self.cell_size = cell_size
        self.grid_view.set_image(image)

    # slots
    def _on_mix_seed_changed(self, value: int) -> None:
        self.workspace.mix_seed = int(value)

    def _on_layer_toggled(self, _checked: bool) -> None:
        self.workspace.mix_layers = tuple(b.isChecked() for b in self.layer_buttons)

    def _on_preset_chosen(self, name: str) -> None:
        self.workspace.mix_layers = self.presets.get(name, (False,) * len(self.layer_buttons))

    def _on_grid_seeds_changed(self) -> None:
        try:
            rows, cols = parse_grid_seeds(self.row_seeds.text()), parse_grid_seeds(self.col_seeds.text())
        except ValueError as exc:
            self.grid_error.setText(str(exc))
            return
        self.grid_error.setText("")
        self.workspace.update(grid_row_seeds=rows, grid_col_seeds=cols)

    def _on_grid_photo_changed(self, _index: int) -> None:
        self.workspace.grid_photo = self.grid_photo.currentData() or ""

    def _on_grid_clicked(self, y: int, x: int) -> None:
        if not self.cell_size or self.info is None:
            return
        row, col = y // self.cell_size - 1, x // self.cell_size - 1  # row/col 0 are the seed headers
        grid = grid_from_workspace(self.workspace, self.info)
        rows, cols = grid.rows, grid.cols     # seeds, and None for the inverted photo
        if row >= len(rows) or col >= len(cols):
            return
        if row >= 0 and col >= 0:
            self.cell_chosen.emit(row, col)
        elif row >= 0 and rows[row] is None:
            self.workspace.update(base_ws=grid.photo_ws.copy(),
                                  base_noise={k: v.copy() for k, v in (grid.photo_noise or {}).items()})
        elif row >= 0:
            self.workspace.base_ws = None
            self.workspace.seed = rows[row]
        elif col >= 0 and cols[col] is not None:
            self.workspace.mix_seed = cols[col]

    def _show(self) -> None:
        ws = self.workspace
        self.mix_seed.blockSignals(True)
        self.mix_seed.setValue(ws.mix_seed)
        self.mix_seed.blockSignals(False)
        mask = ws.mix_layers if len(ws.mix_layers) == len(self.layer_buttons) else (False,) * len(self.layer_buttons)
        for button, checked in zip(self.layer_buttons, mask):
            button.blockSignals(True)
            button.setChecked(checked)
            button.blockSignals(False)
        for name, button in self.preset_buttons.items():
            button.setDown(bool(self.presets) and self.presets.get(name) == tuple(mask))
        self.grid_caption.setText(
            "Top row: column seeds. Left column: row seeds. Each cell: its row seed with the checked layers "
            "of its column seed. Click a cell to make it the current latent."
            if any(mask) else "Check layers or pick a preset to mix; until then every row repeats its seed.")
        has_photo = ws.photo_ws is not None
        self.grid_photo.setEnabled(has_photo)
        self.grid_photo.setToolTip(PHOTO_TIP if has_photo else NO_PHOTO_TIP)
        self.grid_photo.blockSignals(True)
        self.grid_photo.setCurrentIndex(max(0, self.grid_photo.findData(ws.grid_photo)))
        self.grid_photo.blockSignals(False)
        if not self.row_seeds.hasFocus():
            self.row_seeds.setText(format_seeds(ws.grid_row_seeds))
        if not self.col_seeds.hasFocus():
            self.col_seeds.setText(format_seeds(ws.grid_col_seeds))
