"""The studio's engine: latent maths, the workspace model and the renderer that owns a
generator. Qt-free by contract (tests/test_layering.py): the widget layer builds on it."""
