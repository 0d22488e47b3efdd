"""Figures a reviewer accepts: labels with units, anchors inside the PSNR-bpp axes (or named in
the panel), a colour and line style per codec, log-scale FLOPs over a decade, PNG and SVG."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis import figures
from analysis.anchors import read_anchor
from analysis.curves import RDCurve
from analysis.labels import headers, label
from analysis.query import query_frontier
from analysis.runs import runs
from rdc import names

ANCHORS = ["tensorflow_compression/PSNR_sRGB_RGB/bpg444.txt", "compressai/vtm.json",
           "tensorflow_compression/PSNR_sRGB_RGB/jpeg420.txt", "compressai/av1.json"]


def test_labels_have_words_and_units():
    assert label(names.DECODE_KFLOPS_PER_PX) == "decode complexity (kFLOPs/px)"
    assert label(names.PSNR) == "PSNR on RGB (dB)" and label(names.BPP) == "rate (bpp)"
    assert label(names.decode_ms("cpu-x-1t")) == "decode time on cpu-x-1t (ms/image)"
    assert label(names.runtime_metric(names.DECODE_NETWORKS, names.MPS, "cuda-h100")) == \
        "decode (networks only) throughput on cuda-h100 (MP/s)"
    assert label("rate_savings_vs_BPG (4:4:4)") == "rate savings vs BPG (4:4:4) (%)"
    assert label("a_new_metric") == "a_new_metric"  # unknown: its key, never a wrong word
    assert headers([names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX]) == {
        names.DECODE_KFLOPS_PER_PX: "decode complexity (kFLOPs/px)",
        names.DECODE_KMACS_PER_PX: "decode complexity (kMACs/px)"}


def test_psnr_panel_holds_the_anchors_points_or_names_them(tmp_path, lambda_store, anchors_dir):
    # Toy models at 12-21 dB and 0.1-0.33 bpp, as a short training gives; the anchors start at 23 dB.
    frame = runs("mixed", lambda_store)
    anchors = [read_anchor(anchors_dir / name) for name in ANCHORS]
    far = RDCurve("far codec", [3.0, 4.0, 5.0], [40.0, 42.0, 44.0], "test")  # no point at the runs' rates
    drawn = figures.psnr_vs_bpp(frame, anchors + [far], tmp_path / "fig2.png", title="toy")
    (x_low, x_high), (y_low, y_high) = drawn.xlim, drawn.ylim
    complete = frame.dropna(subset=[names.BPP, names.PSNR])
    assert x_low <= complete[names.BPP].min() and complete[names.BPP].max() <= x_high
    assert y_low <= complete[names.PSNR].min() and complete[names.PSNR].max() <= y_high
    svg = drawn.svg.read_text()
    for curve in anchors:
        at_these_rates = curve.bpp <= x_high
        assert at_these_rates.any(), curve.name
        # Every point of the anchor at the runs' rates is inside the axes, not above or below them.
        assert np.all((y_low <= curve.psnr[at_these_rates]) & (curve.psnr[at_these_rates] <= y_high)), curve.name
        assert curve.name in svg  # in the legend, as text
    assert y_high > 30  # the axes reach up to the anchors, well above the runs' 21 dB
    assert drawn.notes == ["Fig. 2 right: outside the axes (no point at these rates): far codec (from 3 bpp)"]
    assert "outside the axes (no point at these rates): far codec (from 3 bpp)" in svg


def test_every_codec_its_own_colour_and_line_style():
    codecs = ["BPG (4:4:4)", "VTM", "JPEG 4:2:0 (Pillow 13.0.0, libjpeg-turbo 3.2.0)",
              "WebP (Pillow 13.0.0, libwebp 1.6.0)", "AVIF 4:4:4 (Pillow 13.0.0, libavif 1.3.0)", "JPEG2000", "HM"]
    styles = figures.codec_styles(codecs)
    colours = [s["color"] for s in styles.values()]
    lines = [str(s["linestyle"]) for s in styles.values()]
    assert len(set(colours)) == len(codecs) and len(set(lines)) == len(codecs)
    assert styles["BPG (4:4:4)"] != styles["AVIF 4:4:4 (Pillow 13.0.0, libavif 1.3.0)"]
    # The same codec keeps its style whatever else is drawn with it.
    assert figures.codec_styles(["VTM"])["VTM"] == styles["VTM"]
    from matplotlib.colors import to_hex

    family_colours = {to_hex(s["color"]) for s in figures.family_styles([f"F{i}" for i in range(10)]).values()}
    assert not family_colours & {to_hex(c) for c in colours}


def test_flops_axis_is_logarithmic_when_it_spans_a_decade(tmp_path, lambda_store, known_store):
    wide = query_frontier("mixed", tracking_uri=lambda_store, include_stopped=True)  # 50-600 kFLOPs/px
    drawn = figures.rd_loss_vs_flops(wide.ranked, names.DECODE_KFLOPS_PER_PX, names.RD_LOSS, tmp_path / "wide.png",
                                     title="wide")
    assert drawn.xscale == "log"
    narrow = query_frontier("known", tracking_uri=known_store)  # 100-500 kFLOPs/px
    drawn = figures.rd_loss_vs_flops(narrow.ranked, names.DECODE_KFLOPS_PER_PX, names.RD_LOSS,
                                     tmp_path / "narrow.png", title="narrow")
    assert drawn.xscale == "linear"
    svg = drawn.svg.read_text()
    assert "decode complexity (kFLOPs/px)" in svg and "RD loss" in svg


def test_figures_are_png_at_300_dpi_and_svg(tmp_path, known_store):
    from PIL import Image

    ranked = query_frontier("known", tracking_uri=known_store).ranked
    drawn = figures.rd_loss_vs_flops(ranked, names.DECODE_KFLOPS_PER_PX, names.RD_LOSS, tmp_path / "f.png", title="t")
    with Image.open(drawn.png) as png:
        assert png.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert drawn.svg == tmp_path / "f.svg" and re.search(r"<text[^>]*>", drawn.svg.read_text())
    # Labelled frontier rows as text in the vector file.
    assert all(f">{letter}<" in drawn.svg.read_text() for letter in "ABCD")


def test_an_empty_replay_table_draws_a_figure_that_says_why_without_a_legend(tmp_path):
    """Every trial unfinished: no hypervolume to plot. The figure says so, and matplotlib is not
    asked for a legend of nothing (it warns: 'No artists with labels found')."""
    import warnings

    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame({"policy": ["frontier"], "steps_fraction": [0.4], "hypervolume_kept": [None]})
    texts = []
    real_savefig = plt.Figure.savefig

    def keep_texts(fig, *args, **kwargs):
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        assert all(ax.get_legend() is None for ax in fig.axes)
        return real_savefig(fig, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plt.Figure.savefig = keep_texts
        try:
            figures.hypervolume_vs_steps(table, tmp_path / "hv.png", title="t")
        finally:
            plt.Figure.savefig = real_savefig
    assert any("no hypervolume to compare" in t for t in texts)
    assert (tmp_path / "hv.png").is_file()
