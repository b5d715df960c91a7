"""The notebooks as files: small enough for GitHub's viewer and Colab, and one repository slug.

These read the notebooks on disk (with their stored outputs); they run nothing.
"""

import json
import re
from pathlib import Path

import pytest

from helpers.notebook import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MB = 1024 * 1024
NOTEBOOK_LIMIT_MB = 3    # GitHub's notebook viewer gives up on larger files; Colab opens them slowly
SERIES_LIMIT_MB = 12

# Every place a repository slug (owner/name) is written: clone URLs, Colab and Binder badges.
SLUG_PATTERNS = [
    r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?[\"'/)\s]",
    r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/",
    r"mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/",
]


def test_there_are_seven_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_at_most_3_mb(path):
    size = path.stat().st_size / MB
    assert size <= NOTEBOOK_LIMIT_MB, (
        f"{path.name} is {size:.1f} MB with its outputs, over {NOTEBOOK_LIMIT_MB} MB: show pictures "
        "with helpers.show_figure (JPEG) rather than as PNG, or show fewer or smaller figures")


def test_the_series_is_at_most_12_mb():
    sizes = {p.name: p.stat().st_size / MB for p in NOTEBOOKS}
    total = sum(sizes.values())
    assert total <= SERIES_LIMIT_MB, (
        f"the notebooks take {total:.1f} MB together, over {SERIES_LIMIT_MB} MB: "
        + ", ".join(f"{name} {mb:.1f} MB" for name, mb in sizes.items()))


def _slugs(text):
    return {m for pattern in SLUG_PATTERNS for m in re.findall(pattern, text)}


def _source(path, index):
    return "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][index]["source"])


def test_one_repository_slug_everywhere():
    """The slug of helpers.notebook.REPOSITORY is the only one in the README and in every notebook."""
    places = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        places[path.name] = "\n".join("".join(cell["source"]) for cell in cells)
    for place, text in places.items():
        slugs = _slugs(text)
        assert slugs == {REPOSITORY}, f"{place} names {sorted(slugs)}, but helpers/notebook.py says {REPOSITORY!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_clones_the_repository(path):
    setup = _source(path, 1)
    name = REPOSITORY.split("/")[1]
    assert f'"https://github.com/{REPOSITORY}"' in setup
    assert f'"/content/{name}"' in setup and f'os.chdir("/content/{name}/notebooks")' in setup
    assert f'notebook_setup("{path.stem}")' in setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_has_both_badges_for_this_notebook(path):
    header = _source(path, 0)
    colab = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"
    binder = f"https://mybinder.org/v2/gh/{REPOSITORY}/main?labpath=notebooks%2F{path.name}"
    assert colab in header, f"{path.name}: the header lacks its Colab badge ({colab})"
    assert binder in header, f"{path.name}: the header lacks its Binder badge ({binder})"


def test_readme_badges_point_to_each_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}" in readme
        assert f"mybinder.org/v2/gh/{REPOSITORY}/main?labpath=notebooks%2F{path.name}" in readme
