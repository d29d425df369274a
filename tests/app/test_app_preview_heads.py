"""The preview's per-head maps: every head's W_Q W_Kᵀ and W_V W_O, picked with a head spin box."""

from __future__ import annotations

import numpy as np


def test_every_head_can_be_shown_and_mimetic_heads_read_as_identity(qtbot, window, gui):
    gui.open_demo()
    gui.set_target({"layers": 2, "hidden": 192, "heads": 6, "ffn": 384})
    window.target.add_override("attn", "mimetic")
    gui.plan(lambda p: p.target_sizes["heads"] == 6 and any(t.strategy == "mimetic" for t in p.tensors))
    data = gui.preview()  # the default tensor: layer 0's query weight
    assert data.role == "attn.q"
    assert data.heads_qk["source"].shape == (12, 64, 64) and data.heads_qk["target"].shape == (6, 64, 64)
    # Mimetic's W_Q W_Kᵀ ≈ αZ + βI (positive), W_V W_O ≈ αZ − βI: every target head shows it.
    assert (data.dominance_qk["target"] > 3).all() and (data.dominance_vo["target"] < -3).all()

    preview = window.preview
    preview.map_combo.setCurrentIndex(preview.map_combo.findData("heads_qk"))
    spin = preview.head_spin
    assert spin.isVisible() and (spin.minimum(), spin.maximum()) == (0, 11)
    spin.setValue(4)
    qtbot.waitUntil(lambda: "h4 QKᵀ" in preview.target_map.plotItem.titleLabel.text, timeout=5_000)
    np.testing.assert_array_equal(preview.target_map.matrix, data.heads_qk["target"][4])
    np.testing.assert_array_equal(preview.source_map.matrix, data.heads_qk["source"][4])
    assert f"diag {data.dominance_qk['target'][4]:+.1f}×" in preview.target_map.plotItem.titleLabel.text

    spin.setValue(9)  # the source has 12 heads, the target 6
    qtbot.waitUntil(lambda: "no h9" in preview.target_map.plotItem.titleLabel.text, timeout=5_000)
    np.testing.assert_array_equal(preview.source_map.matrix, data.heads_qk["source"][9])

    preview.map_combo.setCurrentIndex(preview.map_combo.findData("heads_vo"))
    spin.setValue(2)
    qtbot.waitUntil(lambda: "h2 VO" in preview.target_map.plotItem.titleLabel.text, timeout=5_000)
    np.testing.assert_array_equal(preview.target_map.matrix, data.heads_vo["target"][2])

    preview.map_combo.setCurrentIndex(preview.map_combo.findData("row_corr"))
    assert not spin.isVisible()


def test_a_preview_still_drawing_when_its_panel_is_deleted_stops_quietly(qtbot, window, gui):
    """The staged drawing of a preview is tied to the panel: deleting it mid-way drops the stages left
    (CI once saw the last stage run on a closed window and touch a deleted combo box)."""
    import shiboken6

    gui.open_demo()
    data = gui.preview()
    panel = window.preview
    panel.show_preview(data)  # the header is drawn now, the other stages wait for the event loop
    assert not panel.settled
    shiboken6.delete(panel)
    qtbot.wait(200)  # an exception here (a stage touching a deleted widget) fails the test
    gui.set_target({"layers": 2})  # and the window carries on planning without its preview panel
    gui.plan(lambda p: p.target_sizes["layers"] == 2)
