"""Which ipywidgets the studio's tests ran under.

CI runs tests/test_studio.py a second time under ipywidgets 7.7.1, the version Colab ships
(`NST_EXPECT_IPYWIDGETS=7.7.1`, see .ci/run). This test makes that run fail if it silently
imported another version (say, the environment's ipywidgets 8) instead.
"""

import os

import pytest


def test_ipywidgets_is_the_expected_version():
    expected = os.environ.get("NST_EXPECT_IPYWIDGETS")
    if not expected:
        pytest.skip("NST_EXPECT_IPYWIDGETS is not set: only the ipywidgets 7.7.1 run of .ci/run checks this")
    import ipywidgets

    assert ipywidgets.__version__ == expected, (
        f"expected ipywidgets {expected} first on PYTHONPATH, got {ipywidgets.__version__} from {ipywidgets.__file__}")
