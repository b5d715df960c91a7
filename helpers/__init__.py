"""Neural style transfer by optimization (Gatys, Ecker & Bethge), the tutorial's helpers.

The package is cut the way the tutorial is told:

- `images`       load, convert, save and find pictures (RGB in [0, 1] everywhere)
- `network`      VGG-19 with the original or torchvision weights, named layers
- `losses`       gram_matrix, content_loss, style_loss, total_variation_loss
- `optimization` the engine: StyleTransfer, stylize, StyleTransferConfig
- `memory`       how much a run needs and the machine has: refusing sizes that cannot fit
- `plots`        image grids, feature maps, Gram heatmaps, loss curves
- `cli`          `python -m helpers`
"""

from .device import describe_device, pick_device
from .errors import StyleTransferError
from .images import (bundled_images, image_to_tensor, images_dir, load_image, save_image,
                     tensor_to_image)
from .losses import content_loss, gram_matrix, style_loss, total_variation_loss
from .network import LAYER_NAMES, layer_table, load_vgg19
from .notebook import NotebookRun, notebook_setup
from .optimization import (Progress, StyleTransfer, StyleTransferConfig, StyleTransferResult,
                           stylize)
from .plots import plot_losses, show_feature_maps, show_gram, show_images

__version__ = "0.1.0"

__all__ = [
    "LAYER_NAMES", "NotebookRun", "Progress", "StyleTransfer", "StyleTransferConfig", "StyleTransferError",
    "StyleTransferResult", "bundled_images", "content_loss", "describe_device", "gram_matrix",
    "image_to_tensor", "images_dir", "layer_table", "load_image", "load_vgg19", "notebook_setup", "pick_device",
    "plot_losses", "save_image", "show_feature_maps", "show_gram", "show_images", "style_loss",
    "stylize", "tensor_to_image", "total_variation_loss",
]
