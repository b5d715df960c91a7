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


def test_a_row_that_is_not_yet_texture_on_the_left_or_photo_on_the_right_asks_for_a_column():
    grey = 1.0
    spans = {"relu1_1": [1.1, 0.5, 0.2], "relu5_1": [0.95, 0.6, 0.3]}
    assert figure3.unspanned_side(spans, grey) is None
    assert figure3.unspanned_side({**spans, "relu2_1": [0.34, 0.2, 0.1]}, grey) == "left"
    assert figure3.unspanned_side({**spans, "relu3_1": [1.2, 0.8, 0.6]}, grey) == "right"
    assert figure3.unspanned_side({"relu1_1": [0.3, 0.2, 0.6]}, grey) == "left"  # the left end first
    assert figure3.unspanned_side(spans, grey=2.0) == "left"  # relative to a grey picture's distance


def test_the_grid_widens_until_its_rows_span_texture_to_photo(tmp_path, monkeypatch):
    """make_grid adds a decade on the side that is missing, up to `widen` columns, and names,
    labels and records the added columns like the others (panels faked: a content distance
    that falls with the ratio, 1.0 for a grey picture)."""
    import torch

    class Judge:
        def __init__(self, content, style, size_px):
            self.engine = type("E", (), {"photo": torch.zeros(1, 3, 8, 8)})()

        def __call__(self, image):  # a panel holds its content distance + 10; a grey picture scores 1.0
            m = image.mean().item()
            return {"content": m - 10 if m > 5 else 1.0, "style": 0.1}

    def panel(content, style, layer, ratio, size_px, steps, optimizer):  # content 1.0 at 1e-10, 0.2 at 1e-5
        import math

        c = min(1.0, max(0.0, 1.0 - 0.16 * (math.log10(ratio) + 10)))
        return type("R", (), {"image": torch.full((1, 3, 8, 8), c + 10), "steps_done": steps})()

    monkeypatch.setattr(figure3, "Judge", Judge)
    monkeypatch.setattr(figure3, "make_panel", panel)
    summary = figure3.make_grid(CITY, STARRY, tmp_path / "g", rows=("relu1_1",), ratios=(1e-8, 1e-7, 1e-6, 1e-5),
                                size_px=8, steps=1, quiet=True)
    assert [r["ours"] for r in summary["ratios"]] == [1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5]
    assert summary["columns_added"] == {"left": 2, "right": 0} and summary["spans"]
    assert (tmp_path / "g" / "relu1_1_1e-10.png").exists()
    assert [p["ratio"] for p in summary["panels"]] == [1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5]
    short = figure3.make_grid(CITY, STARRY, tmp_path / "h", rows=("relu1_1",), ratios=(1e-8, 1e-5), size_px=8,
                              steps=1, quiet=True, widen=1)
    assert [r["ours"] for r in short["ratios"]] == [1e-9, 1e-8, 1e-5] and not short["spans"]
