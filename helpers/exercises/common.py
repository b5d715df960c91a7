"""What every checker shares: running the learner's function without ever raising, comparing
tensors, naming the usual slip, and the ✓/✗ report."""

import torch


def report(problems, success):
    if problems:
        for p in problems:
            print("✗ " + p)
        return False
    print("✓ " + success)
    return True


def close(a, b, rtol=1e-4, atol=1e-6):
    return torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


def call(fn, *args):
    """Run a learner's function; return (result, None), or (None, a one-line problem) if it raised."""
    try:
        return fn(*args), None
    except Exception as err:  # whatever the learner's code does, report it in one line, never raise
        return None, f"your function raised {err.__class__.__name__}: {err}"


def first_match(out, candidates):
    """The message of the first (tensor, message) candidate that `out` equals, else None."""
    for tensor, message in candidates:
        if out.shape == tensor.shape and close(out, tensor, atol=1e-3):
            return message
    return None


def call_for_tensor(fn, *args, scalar=False):
    """Run a learner's function that should return a tensor (one number if `scalar`);
    return (tensor, None), or (None, a one-line problem)."""
    out, problem = call(fn, *args)
    if problem:
        return None, problem
    if not isinstance(out, torch.Tensor):
        return None, f"return a tensor (it carries the gradient), not {type(out).__name__}"
    if scalar and (out.numel() != 1 or out.dim() != 0):
        return None, f"return one number (a 0-dimensional tensor), yours has shape {tuple(out.shape)}"
    return out, None
