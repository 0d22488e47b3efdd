"""`rdc report` on a real MLflow store with real anchors and real Pillow encodes of Kodak."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.labels import savings_column
from rdc import names
from rdc.cli import main

VTM = "compressai/vtm.json"
BPG444 = "tensorflow_compression/PSNR_sRGB_RGB/bpg444.txt"
FIGURES = ["fig1_rate_savings_vs_bpp", "fig2_psnr_vs_bpp", "fig2_rd_loss_vs_kflops",
           "fig3_rate_savings", "fig4_decode_time_vs_kflops", "fig4_rank_rank_1"]
BPG_SAVINGS = savings_column("BPG (4:4:4)")


@pytest.fixture(scope="module")
def two_images(tmp_path_factory, kodak_dir) -> Path:
    """Two Kodak images (a folder of links, so nothing is copied) to keep Pillow encodes short."""
    folder = tmp_path_factory.mktemp("images")
    for name in ("kodim01.png", "kodim04.png"):
        (folder / name).symlink_to(kodak_dir / name)
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory, study_store, anchors_dir, two_images) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    code = main(["report", "--experiment", "study", "--tracking-uri", study_store, "--out", str(out),
                 "--anchor", str(anchors_dir / BPG444), "--anchor", str(anchors_dir / VTM),
                 "--images", str(two_images), "--codecs", "jpeg,webp"])
    assert code == 0
    return out


def test_report_writes_every_figure_and_one_self_contained_page(report):
    for name in FIGURES:
        with Image.open(report / f"{name}.png") as figure:
            assert figure.format == "PNG" and figure.width > 1200 and figure.height > 600
            assert figure.info["dpi"] == pytest.approx((300, 300), abs=0.5)
        svg = (report / f"{name}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<text" in svg  # text kept as text
    page = (report / "report.html").read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert len(embedded) == len(FIGURES)
    vectors = re.findall(r'<a href="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+" download="([^"]+)"', page)
    assert sorted(vectors) == sorted(f"{name}.svg" for name in FIGURES)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from elsewhere
    assert "<table" in page and 'id="frontier"' in page


def test_report_tables(report, devices):
    # Table 1: the frontier at one lambda, with MP/s without entropy coding and savings vs BPG.
    table = pd.read_csv(report / "frontier.csv")
    assert list(table["label"]) == ["A", "B"]  # most complex first, as on the page and the CLI
    frontier = table.set_index("variant_id")
    assert frontier["label"].to_dict() == {"balle": "B", "elic": "A"}
    assert set(frontier["train.lmbda"]) == {0.0018}
    assert frontier["rd_points"].to_dict() == {"balle": 8, "elic": 6}
    mps = names.runtime_metric(names.DECODE_NETWORKS, names.MPS, devices["gpu"])
    assert frontier.loc["elic", mps] == pytest.approx(768 * 512 / 1e6 / (20 / 1e3))
    # ELIC's curve lies inside BPG's and VTM's: the common range is ELIC's own, so -25.3 % (REFERENCE.md).
    assert frontier.loc["elic", BPG_SAVINGS] == pytest.approx(25.3, abs=0.1)
    assert frontier.loc["elic", savings_column("VTM")] == pytest.approx(7.0, abs=0.1)
    savings = pd.read_csv(report / "rate_savings.csv").set_index("name")
    assert (savings["psnr_low"].unique().tolist(), savings["psnr_high"].unique().tolist()) == ([29.113], [37.624])
    bd = pd.read_csv(report / "bd_rates.csv")
    # ELIC's published points, logged at 6 lambdas: the same -7.0 % vs VTM as from the files.
    elic_vs_vtm = bd[bd["curve"].str.endswith(": elic") & (bd["reference"] == "VTM")]
    assert elic_vs_vtm["bd_rate_percent"].item() == pytest.approx(-7.0, abs=0.1)
    assert elic_vs_vtm["psnr_low"].item() == 29.113 and elic_vs_vtm["psnr_high"].item() == 37.624
    assert {"JPEG 4:2:0", "WebP"} <= {r.split(" (")[0] for r in bd["reference"]}
    # Runtimes without entropy coding on the two clean devices; the shared CPU is left out.
    tau = pd.read_csv(report / "kendall_tau.csv")
    assert tau[["device_a", "device_b", "n"]].values.tolist() == [[devices["cpu"], devices["gpu"], 14]]
    assert f"{devices['cpu']}-shared" in (report / "report.html").read_text()
    assert (report / "classical_jpeg.json").is_file()


def test_bad_input_writes_nothing(tmp_path, study_store, anchors_dir, capsys):
    out = tmp_path / "out"
    cases = [
        (["--anchor", str(anchors_dir / "tensorflow_compression/PSNR_sRGB_Y/bpg444.txt")], "--anchor="),
        (["--anchor", str(anchors_dir / VTM), "--reference", "HEVC"], "--reference='HEVC': not one of the anchors"),
        (["--images", str(tmp_path / "none")], "--images="),
        (["--images", str(tmp_path), "--codecs", "jxl"], "--codecs='jxl': unknown codec"),
        (["--experiment", "nope"], "--experiment='nope': no such experiment"),
    ]
    for extra, message in cases:
        argv = ["report", "--experiment", "study", "--tracking-uri", study_store, "--out", str(out), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rdc-report-")]


def test_missing_metric_and_out_is_a_file(tmp_path, known_store, capsys):
    file = tmp_path / "taken"
    file.write_text("x")
    assert main(["report", "--experiment", "known", "--tracking-uri", known_store, "--out", str(file)]) == 2
    assert "--out=" in capsys.readouterr().err and file.read_text() == "x"
    assert main(["report", "--experiment", "known3d", "--tracking-uri", known_store, "--out", str(tmp_path / "o")]) == 2
    assert "no finished run has bpp" in capsys.readouterr().err


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
# matplotlib's tab10 colours the figures use for families and bars: present only if the PNGs decoded.
PLOT_COLOURS = {"blue": (31, 119, 180), "orange": (255, 127, 14), "green": (44, 160, 44), "red": (214, 39, 40)}


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("headless Chromium is absent: `make test-deps` installs Debian's chromium package")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)  # fresh profile every time
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.browser
def test_report_opens_in_headless_chromium(report, tmp_path):
    url = (report / "report.html").resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    frontier = dom[dom.index('id="frontier"'):]
    frontier = frontier[: frontier.index("</table>")]
    assert "balle" in frontier and "elic" in frontier and "Conv/Hyperprior:Conv" in frontier
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) == len(FIGURES)
    assert "-7.02 %" in dom  # ELIC vs VTM in the BD-rate table

    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,7000", url)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (7000, 1280)
    assert pixels.std() > 20, "the page rendered blank"
    for name, colour in PLOT_COLOURS.items():
        close = np.all(np.abs(pixels - np.array(colour)) <= 12, axis=2).sum()
        assert close > 200, f"no {name} plot marks on the page: the embedded figures did not decode"


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory, lambda_store, anchors_dir) -> Path:
    """The report of a toy sweep: one timed run, a family at one lambda, a run stopped early, a
    reference run (no --images: no Pillow encodes)."""
    out = tmp_path_factory.mktemp("toy") / "out"
    assert main(["report", "--experiment", "mixed", "--tracking-uri", lambda_store, "--out", str(out),
                 "--anchor", str(anchors_dir / BPG444)]) == 0
    return out


def _notes(page: str) -> str:
    return page[page.index("<h2>Notes and sources</h2>"):]


def test_degenerate_panels_are_left_out_and_said(toy_report, devices):
    # One timed run: no one-point Fig. 4 panel, no rank-rank plot titled "tau = nan over 1 runs".
    assert not list(toy_report.glob("fig4_*"))
    notes = _notes((toy_report / "report.html").read_text())
    assert f"Fig. 4: no panel for {devices['cpu']}: 1 run(s) timed there (a panel needs 2)" in notes
    assert "nan" not in notes.lower()


def test_families_missing_from_a_table_are_named_with_the_reason(toy_report):
    notes = _notes((toy_report / "report.html").read_text())
    assert ("family SwinT/Hyperprior:Conv is in no rate-savings table: its RD envelope has 1 point(s), "
            "pchip BD-rate needs 2") in notes
    assert "B (v3): 1 RD point(s), pchip BD-rate needs 2: no rate savings" in notes
    assert "left out 1 run(s) stopped early by a scheduler: --include-stopped shows them" in notes


def test_reference_runs_are_drawn_as_labelled_points(toy_report):
    label = "ref: compressai:bmshj2018-hyperprior:quality=3"
    for figure in ("fig2_rd_loss_vs_kflops.svg", "fig2_psnr_vs_bpp.svg"):
        svg = (toy_report / figure).read_text()
        assert label in svg and "reference (trained elsewhere)" in svg
    frontier = pd.read_csv(toy_report / "frontier.csv")
    assert list(frontier["label"]) == ["A", "B", "C", label]


@pytest.mark.browser
def test_report_fits_1280_px_with_every_figure_in_png_and_svg(report, tmp_path):
    # A copy of the page with one script that writes what the browser laid out into the DOM.
    probe = """<script>
      const page = document.documentElement, boxes = [...document.querySelectorAll('.scroll')];
      document.body.dataset.pageWidth = page.scrollWidth + ':' + window.innerWidth;
      document.body.dataset.tables = boxes.map(b => b.querySelector('table').id + '=' + b.scrollWidth + ':'
                                                      + b.clientWidth).join(',');
      document.body.dataset.images = [...document.images].map(i => i.naturalWidth).join(',');
    </script></body>"""
    copy = tmp_path / "probe.html"
    copy.write_text((report / "report.html").read_text().replace("</body>", probe))
    dom = _chromium(tmp_path, "--window-size=1280,900", "--dump-dom", copy.resolve().as_uri()).stdout
    body = re.search(r'<body data-page-width="(\d+):(\d+)" data-tables="([^"]*)" data-images="([^"]*)"', dom)
    assert body, dom[:500]
    page_width, window = int(body[1]), int(body[2])
    assert window == 1280 and page_width <= window, f"the page is {page_width} px wide in a {window} px window"
    for table in body[3].split(","):
        name, widths = table.split("=")
        content, box = map(int, widths.split(":"))
        assert content <= box, f"table {name} overflows its box at 1280 px: {content} > {box}"
    widths = [int(w) for w in body[4].split(",")]
    assert len(widths) == len(FIGURES) and min(widths) > 1200  # every PNG decoded at full resolution
    links = re.findall(r'<a href="data:image/svg\+xml;base64,[^"]+" download="([^"]+)"', dom)
    assert sorted(links) == sorted(f"{name}.svg" for name in FIGURES)
