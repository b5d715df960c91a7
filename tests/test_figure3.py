"""`python -m helpers figure3`: the paper's Figure 3 grid (style layers x alpha/beta), its file
names, its column labels, a tiny grid end to end, and its direction: less alpha/beta, more painting."""

import json
from pathlib import Path

import pytest

from helpers import figure3
from helpers.cli import main

ROOT = Path(__file__).resolve().parents[1]
CITY = str(ROOT / "images/content/city.jpg")
STARRY = str(ROOT / "images/style/starry_night.jpg")


def test_panel_names_are_the_deepest_style_layer_and_the_ratio():
    assert figure3.panel_name("relu5_1", 1e-4) == "relu5_1_1e-04.png"
    assert figure3.panel_name("relu1_1", 1e-8) == "relu1_1_1e-08.png"


def test_each_column_is_labelled_with_our_ratio_and_the_papers():
    assert figure3.column_label(1e-8) == "α/β = 1e-08 (paper: 1e-05)"
    labels = [figure3.column_label(r) for r in figure3.RATIOS]
    assert [label.split("paper: ")[1].rstrip(")") for label in labels] == ["1e-05", "1e-04", "1e-03", "1e-02"]


def test_quiet_noise_is_seeded_grey_with_the_stated_amplitude():
    a, b = figure3.quiet_noise((1, 3, 20, 30), seed=3), figure3.quiet_noise((1, 3, 20, 30), seed=3)
    assert (a == b).all()
    half = figure3.NOISE_AMPLITUDE / 2
    assert a.min() >= 0.5 - half and a.max() <= 0.5 + half and abs(a.mean().item() - 0.5) < 0.01


def test_a_tiny_grid_writes_every_file_and_never_overwrites(tmp_path):
    out = tmp_path / "grid"
    code = main(["figure3", CITY, STARRY, "-o", str(out), "--size", "48", "--steps", "3",
                 "--rows", "relu1_1,relu2_1", "--ratios", "1e-8,1e-4", "--quiet"])
    assert code == 0
    names = {"relu1_1_1e-08.png", "relu1_1_1e-04.png", "relu2_1_1e-08.png", "relu2_1_1e-04.png",
             "figure3.png", "figure3.json"}
    assert {p.name for p in out.iterdir()} == names
    summary = json.loads((out / "figure3.json").read_text())
    assert summary["ratios"] == [{"ours": 1e-8, "paper": 1e-5}, {"ours": 1e-4, "paper": 1e-1}]
    assert [p["file"] for p in summary["panels"]] == ["relu1_1_1e-08.png", "relu1_1_1e-04.png",
                                                      "relu2_1_1e-08.png", "relu2_1_1e-04.png"]
    assert all(p["steps"] == 3 and p["content"] > 0 and p["style"] > 0 for p in summary["panels"])
    assert summary["machine"]["cpu"] and "Figure 3" in summary["figure"]
    before = (out / "relu1_1_1e-08.png").read_bytes()
    assert main(["figure3", CITY, STARRY, "-o", str(out), "--size", "48", "--steps", "1",
                 "--rows", "relu1_1", "--ratios", "1e-8", "--quiet"]) == 2
    assert (out / "relu1_1_1e-08.png").read_bytes() == before


@pytest.mark.parametrize("args, says", [
    (["--rows", "relu4_2"], "deepest style layer"),
    (["--ratios", "1e-5,x"], "--ratios"),
    (["--ratios", "0"], "positive"),
    (["--size", "8"], "too small"),
    (["--steps", "0"], "--steps"),
    (["no_such_photo.jpg", STARRY], "no_such_photo.jpg"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, says):
    assert main(["figure3", *args, "-o", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()


def test_less_alpha_over_beta_paints_more():
    """The grid's direction, on the paper's network and loss: at the left column's ratio the
    panel is far from the photo's content and close to the painting's style; at a ratio
    10,000 times larger it is the other way round (48 px, 60 Adam steps: a trend, not a figure)."""
    judge = figure3.Judge(CITY, STARRY, 48)
    left, right = (judge(figure3.make_panel(CITY, STARRY, "relu5_1", r, size_px=48, steps=60).image)
                   for r in (1e-8, 1e-4))
    assert left["content"] > 2 * right["content"]
    assert left["style"] < right["style"]
