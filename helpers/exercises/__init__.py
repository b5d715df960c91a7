"""Checkers for the notebooks' "try it" exercises.

Each `check_*` function runs a learner's function against the helpers' own on a few
inputs and prints what is right or, in one line each, what is wrong. It returns True
when everything matches, so a notebook can also `assert` it.

One module per pair of notebooks, cut as their tests are (tests/test_exercises_*.py); a
notebook calls every checker from here, `exercises.check_gram_matrix(gram_matrix)`:

- `notebooks_01_02`  images and VGG-19, the content representation
- `notebooks_03_04`  the style representation, style transfer
- `notebooks_05_06`  the interactive studio, beyond the basics
- `notebook_07`      real-time style transfer
- `common`           what they share: the learner's function run without raising, the report
"""

from .notebooks_01_02 import (check_caffe_preprocess, check_feature_shape, check_receptive_field,
                              check_content_loss, check_content_loss_value)
from .notebooks_03_04 import (check_gram_matrix, check_layer_style_loss, check_total_variation_loss,
                              check_time_estimate, check_optimization_loop)
from .notebooks_05_06 import (check_live_settings, check_studio_layer_weights, check_luminance,
                              check_blend_grams)
from .notebook_07 import check_instance_norm, check_flicker

__all__ = [
    "check_blend_grams", "check_caffe_preprocess", "check_content_loss", "check_content_loss_value",
    "check_feature_shape", "check_flicker", "check_gram_matrix", "check_instance_norm",
    "check_layer_style_loss", "check_live_settings", "check_luminance", "check_optimization_loop",
    "check_receptive_field", "check_studio_layer_weights", "check_time_estimate",
    "check_total_variation_loss",
]
