"""The studio opens a BigGAN checkpoint as a class-conditional Z-space model: the class picker,
and truncation by resampling z beyond the threshold, applied to whichever class is chosen."""
import numpy as np
import pytest
import torch

from conftest import CLASS_NAMES, export_tiny, wait_shown
from trainer import load_generator
from trainer.images import to_uint8
from trainer.latents.space import seed_to_z


@pytest.mark.slow
def test_studio_opens_biggan_with_the_class_picker_and_z_truncation(qtbot, make_window, tmp_path):
    path = export_tiny(tmp_path / "biggan.safetensors", arch="biggan", c_dim=3)
    window = make_window(path)
    assert window.info.arch == "biggan" and window.info.num_ws == 0 and window.info.c_dim == 3
    combo = window.latent_panel.class_combo
    assert combo.isEnabled() and [combo.itemText(i) for i in range(combo.count())] == CLASS_NAMES
    panel = window.truncation_panel
    assert panel.pages.currentIndex() == 1 and not window.mixing_panel.isEnabled()   # Z truncation, no W tools

    first = wait_shown(qtbot, window)
    combo.setCurrentIndex(2)
    chosen = wait_shown(qtbot, window)
    assert window.workspace.class_index == 2 and not np.array_equal(chosen, first)

    panel.threshold_slider.setValue(40)
    assert window.workspace.z_threshold == 0.4
    truncated = wait_shown(qtbot, window)
    z = window.last_result.z
    assert np.abs(z).max() <= 0.4 and not np.array_equal(truncated, chosen)
    # what is on screen is G's image of the truncated z for the chosen class, drawn in eval mode
    G = load_generator(path)
    assert np.array_equal(z, seed_to_z(window.workspace.seed, G.z_dim, 0.4))
    expected = to_uint8(G(torch.from_numpy(z)[None], torch.tensor([2])))[0]
    assert np.array_equal(truncated, expected)
