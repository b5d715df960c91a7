"""VGG-19's layer names, and what each layer sees: plain Python, no PyTorch.

`config` checks the layers a run asks for, and `network` builds the stack, from the same
names; keeping them here (not in `network`) lets the settings be checked without loading
PyTorch, and keeps `config` below `network` in the import graph.
"""

from .errors import StyleTransferError


def _layer_names():
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


#: The 37 layers of VGG-19's feature stack in order; the position is torchvision's index.
LAYER_NAMES = _layer_names()
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


#: The number of filters of each block's convolutions.
BLOCK_WIDTHS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def check_layers(layers):
    """Return `layers` as a set after checking every name; unknown names raise a clear error."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise StyleTransferError("no layers asked for: name at least one, e.g. relu4_2")
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        raise StyleTransferError(
            f"unknown VGG-19 layer {unknown[0]!r}; valid names are " + ", ".join(LAYER_NAMES)
        )
    return set(layers)


def layer_table():
    """One row per layer: name, index, channels, downsampling and receptive field (px).

    `downsampling` is how many input pixels one step on the feature map moves
    (1, 2, 4, 8, 16 or 32); `receptive_field` is the side of the input square that a
    single activation can see.
    """
    rows = []
    channels, jump, field = 3, 1, 1
    widths = BLOCK_WIDTHS
    for index, name in enumerate(LAYER_NAMES):
        if name.startswith("conv"):
            channels = widths[int(name[4])]
            field += 2 * jump  # a 3×3 convolution, stride 1
        elif name.startswith("pool"):
            field += jump  # a 2×2 window, stride 2
            jump *= 2
        rows.append({"name": name, "index": index, "channels": channels,
                     "downsampling": jump, "receptive_field": field})
    return rows
