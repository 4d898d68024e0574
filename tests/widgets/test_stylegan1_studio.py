"""The studio opens a StyleGAN v1 checkpoint with every control it offers a StyleGAN2: W and W+,
style mixing by layer, truncation with a cutoff, noise modes; each one changes the picture."""
import numpy as np
import pytest

from conftest import export_tiny, wait_grid, wait_shown


def controls(window) -> dict:
    """What the user can reach for the open model, panel by panel."""
    info, latent, mixing = window.info, window.latent_panel, window.mixing_panel
    return {"truncation page": window.truncation_panel.pages.currentIndex(),
            "cutoff up to": window.truncation_panel.cutoff.maximum() - info.num_ws,
            "mixing": mixing.isEnabled(), "mix layers": len(mixing.layer_buttons) - info.num_ws,
            "mix presets": sorted(mixing.preset_buttons),
            "noise": latent.noise.isEnabled(),
            "noise modes": [latent.noise.itemData(i) for i in range(latent.noise.count())],
            "copy w": latent.copy_w.isEnabled(), "class": latent.class_combo.isEnabled(),
            "invert spaces": [window.invert_panel.space.itemData(i) for i in range(window.invert_panel.space.count())]}


@pytest.mark.slow
def test_stylegan1_has_the_stylegan2_controls_and_each_changes_the_image(qtbot, make_window, tmp_path):
    sg2 = make_window(export_tiny(tmp_path / "sg2.safetensors", arch="stylegan2"))
    expected = controls(sg2)
    sg2.close()
    window = make_window(export_tiny(tmp_path / "sg1.safetensors", arch="stylegan1"))
    assert window.info.arch == "stylegan1" and window.info.has_w and window.info.num_ws == 6
    assert window.info.layer_resolutions == (4, 4, 8, 8, 16, 16)
    assert controls(window) == expected and expected["noise"] and expected["mixing"]
    first = wait_shown(qtbot, window)
    assert first.shape == (16, 16, 3) and "stylegan1" in window.model_label.text()

    window.truncation_panel.psi_slider.setValue(20)                   # psi 0.2 on every layer
    everywhere = wait_shown(qtbot, window)
    window.truncation_panel.cutoff.setValue(2)                        # only the two 4x4 layers
    assert window.workspace.cutoff == 2
    coarse_only = wait_shown(qtbot, window)
    assert len({first.tobytes(), everywhere.tobytes(), coarse_only.tobytes()}) == 3

    panel = window.latent_panel
    for mode in ("none", "random"):
        panel.noise.setCurrentIndex(panel.noise.findData(mode))
        assert not np.array_equal(wait_shown(qtbot, window), coarse_only), mode
    panel.noise.setCurrentIndex(panel.noise.findData("const"))
    assert np.array_equal(wait_shown(qtbot, window), coarse_only)     # the stored maps: the same image again

    mixing = window.mixing_panel
    window.panels.setCurrentWidget(mixing)
    grid = wait_grid(qtbot, window)
    assert grid.image.shape[0] > 16
    mixing.preset_buttons["coarse"].click()
    assert window.workspace.mix_layers == (True, True, False, False, False, False)
    mixed = wait_shown(qtbot, window)
    assert not np.array_equal(mixed, coarse_only)
    mixing.commit.click()                                             # the mix becomes a W+ latent
    assert window.workspace.base_ws is not None and window.workspace.base_ws.shape == (6, 16)
    assert np.array_equal(wait_shown(qtbot, window), mixed)
    assert not window.last_result.error
