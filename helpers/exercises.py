"""Checkers for the notebooks' "try it" exercises.

Each `check_*` function runs a learner's function against the helpers' own on a few
inputs and prints what is right or, in one line each, what is wrong. It returns True
when everything matches, so a notebook can also `assert` it.
"""

import torch


def _report(problems, success):
    if problems:
        for p in problems:
            print("✗ " + p)
        return False
    print("✓ " + success)
    return True


def _close(a, b, rtol=1e-4, atol=1e-6):
    return torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)
