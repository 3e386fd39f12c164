import base64
import io

import numpy as np
import pandas as pd
from browser import chromium, needs_chromium
from PIL import Image

from evaluators import plots
from evaluators.report import render_html_report, write_html_report


def report(tmp_path):
    png = plots.spectrum_plot([("run 1", [3.0, 2.0, 1.0, 0.5])])
    tables = [
        ("FID <per sampler>", pd.DataFrame({"sampler": ["standard", "matched"], "FID": [54.61, 49.37]})),
        ("KNN", pd.DataFrame({"labelled": [10, "all"], "error_pct": [39.0, 10.6]})),
    ]
    path = write_html_report(
        tmp_path / "out" / "report.html", "Trial eae__mnist5k__0", tables, [("spectrum", png)]
    )
    return path, png


def test_html_is_self_contained_and_escaped(tmp_path):
    path, png = report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in text
    assert "FID &lt;per sampler&gt;" in text and "<per sampler>" not in text
    assert "http://" not in text and "https://" not in text  # no external resources
    assert "<table" in text and "49.37" in text
    assert render_html_report("t", [], []).count("<table") == 0


@needs_chromium
def test_renders_in_headless_chromium(tmp_path):
    path, _ = report(tmp_path)
    shot = tmp_path / "shot.png"
    res = chromium([f"--screenshot={shot}", "--window-size=1200,1600", path.resolve().as_uri()], tmp_path / "profile")
    assert shot.is_file(), res.stderr[-2000:]
    arr = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"))
    assert arr.shape[:2] == (1600, 1200)
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10  # text, table borders and the embedded plot

    dom = chromium(["--dump-dom", path.resolve().as_uri()], tmp_path / "dom-profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Trial eae__mnist5k__0" in dom.stdout
    assert "54.61" in dom.stdout and "matched" in dom.stdout and "<img" in dom.stdout
