"""Fixtures for the helpers' tests: small pictures made on the spot, and the real weights."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def rgb_file(tmp_path):
    """A 120×80 RGB JPEG with a colour gradient."""
    y, x = np.mgrid[0:80, 0:120]
    array = np.stack([x * 2, y * 3, (x + y)], axis=-1).clip(0, 255).astype(np.uint8)
    path = tmp_path / "gradient.jpg"
    Image.fromarray(array).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def caffe_model():
    from helpers import load_vgg19

    return load_vgg19("caffe")
