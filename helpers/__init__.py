"""Neural style transfer by optimization (Gatys, Ecker & Bethge), the tutorial's helpers.

The package is cut the way the tutorial is told; each module imports only the ones listed
above it (no cycle: tests/test_structure.py):

- `errors`       StyleTransferError: the one-line errors every module raises (and the parsers print)
- `cache`        the one folder where computed things are kept, and clearing it
- `layers`       VGG-19's layer names, their check and what each layer sees (no PyTorch)
- `cores`        how many CPU cores other programs keep busy, so how many threads to use (no PyTorch)
- `device`       which device to run on, and what it can do (bfloat16, tensor cores)
- `images`       load, convert, save and find pictures (RGB in [0, 1] everywhere)
- `config`       StyleTransferConfig and TrainingConfig: every setting and the values it may take
- `network`      VGG-19 with the original or torchvision weights, named layers, the normalized network
- `losses`       gram_matrix, content_loss, style_loss, total_variation_loss, and StyleTransferLoss,
                 the weighted loss both methods minimize
- `speed`        what makes a step fast without changing it (precision "auto" measures)
- `memory`       how much a run needs and the machine has: refusing sizes that cannot fit
- `color`        keeping the photo's colours (luminance transfer, histogram matching)
- `progress`     Progress: what a run reports to its callback
- `optimization` the engine: StyleTransfer, stylize
- `multiscale`   coarse to fine: one run at several sizes
- `plots`        image grids, feature maps, Gram heatmaps, loss curves
- `preview`      a live preview of a run in a notebook
- `export`       a run's frames as an animated GIF
- `studio`       the interactive studio of notebook 05 (ipywidgets)
- `notebook`     NotebookRun: sizes and step counts that follow the machine's measured speed
- `realtime`     the real-time network (Johnson et al. 2016): train once per painting, one pass per photo
- `download`     a resumable, checksum-checked download of a public photo set to train it on
- `exercises`    the checkers of the notebooks' exercises (a folder: one module per pair of notebooks)
- `figure3`      the paper's Figure 3: style layers × α/β, from noise (`python -m helpers figure3`)
- `cli`, `realtime_cli`  `python -m helpers` (and `python -m helpers train` / `apply` / `figure3`)
"""

import importlib

from .errors import StyleTransferError

# Each name is imported from its module the first time it is used (PEP 562), not here:
# `import helpers` then costs nothing, and `python -m helpers --help` answers without
# loading PyTorch (seconds on a small CPU). `from helpers import load_vgg19` works as usual.
_WHERE = {
    "describe_device": "device", "pick_device": "device",
    "bundled_images": "images", "image_to_tensor": "images", "images_dir": "images",
    "load_image": "images", "save_image": "images", "tensor_to_image": "images",
    "content_loss": "losses", "gram_matrix": "losses", "style_loss": "losses",
    "total_variation_loss": "losses",
    "LAYER_NAMES": "layers", "layer_table": "layers", "load_vgg19": "network",
    "NotebookRun": "notebook", "notebook_setup": "notebook",
    "StyleTransferConfig": "config",
    "Progress": "progress", "StyleTransfer": "optimization", "StyleTransferResult": "optimization",
    "stylize": "optimization",
    "plot_losses": "plots", "show_feature_maps": "plots", "show_figure": "plots", "show_gram": "plots",
    "show_images": "plots",
}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # the next lookup finds it directly
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__version__ = "0.1.0"

__all__ = sorted(["StyleTransferError", *_WHERE])  # every name `from helpers import *` gives
