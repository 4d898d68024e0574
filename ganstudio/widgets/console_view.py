"""A read-only console for a process's output: the trainer's in the Monitor, the dataset tool's in its
dialog. Progress bars that redraw their line with carriage returns stay one line."""
from __future__ import annotations

from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit


class ConsoleView(QPlainTextEdit):
    """Read-only console that understands the carriage returns of progress bars."""

    def __init__(self, parent=None,
                 max_lines: int = 5000):   # older lines are dropped
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(8)
        self.setFont(font)

    def append_output(self, text: str) -> None:
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for i, piece in enumerate(text.replace("\r\n", "\n").split("\n")):
            if i:
                cursor.insertText("\n")
            if "\r" in piece:
                # A progress bar redrawing its line: replace the line instead of adding one.
                piece = piece.rsplit("\r", 1)[1]
                if not piece:
                    continue
                cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
            cursor.insertText(piece)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()
