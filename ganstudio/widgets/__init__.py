"""The studio's Qt layer: the main window, one file per panel, and the render worker thread."""
