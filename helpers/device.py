"""Choosing where the optimization runs (a CUDA GPU, an Apple GPU or the CPU), and what it is fast at."""

import platform
from pathlib import Path

import torch

from .errors import StyleTransferError

DEVICE_NAMES = ("auto", "cuda", "mps", "cpu")


def pick_device(name="auto"):
    """Return a `torch.device` for `name`: "auto" picks cuda > mps > cpu.

    Asking for a device that this machine does not have is an error, not a
    silent fallback, so that a user who wanted the GPU knows they did not get it.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None:
        name = "auto"
    base = str(name).split(":")[0]
    if base not in DEVICE_NAMES:
        raise StyleTransferError(
            f"unknown device {name!r}: choose one of {', '.join(DEVICE_NAMES)}"
        )
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise StyleTransferError(
            "device 'cuda' was asked for but PyTorch sees no CUDA GPU here: "
            "use --device cpu (or auto), or switch on a GPU runtime"
        )
    if base == "mps" and not _mps_available():
        raise StyleTransferError(
            "device 'mps' was asked for but no Apple GPU is available: use --device cpu or auto"
        )
    return torch.device(name)


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(device):
    """A short human description, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' * (n != 1)})"
    return device.type


def fp16_tensor_cores(device):
    """Whether `device` is a GPU with float16 tensor cores but no native bfloat16: compute
    capability 7.x (Volta, Turing: a Colab T4). A candidate for "auto" precision, which measures."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] == 7


def bf16_supported(device):
    """Whether this device runs bfloat16 natively (CUDA with bf16, or a CPU with AVX-512 BF16/AMX).

    Native is not the same as fast: a 2-core Intel Xeon with AVX-512 BF16 ran VGG-19 1.7
    times slower in bfloat16 than in float32. This makes bfloat16 a candidate; "auto"
    precision measures whether it is faster (`helpers.speed.measured_precision`)."""
    device = torch.device(device)
    if device.type == "cuda":
        # Native bfloat16 needs compute capability 8.0 (Ampere) or later; is_bf16_supported()
        # also says yes where it is only emulated (a T4), which is slower than float32.
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def cpu_family_model():
    """'family 23 model 49' from /proc/cpuinfo ('' elsewhere): CPUs that share a model name
    ('AMD EPYC' was a Zen 1, a Zen 2 and a Zen 4 on machines we measured) differ here."""
    found = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name in ("cpu family", "model") and name not in found:
                found[name] = value.strip()
            if not line.strip() and found:
                break  # the first processor's entry is enough
    except OSError:
        pass
    if len(found) < 2:
        return ""
    return f"family {found['cpu family']} model {found['model']}"


def cpu_name():
    """The CPU's model name, e.g. 'AMD EPYC 9R14' (Linux: /proc/cpuinfo; elsewhere what
    `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
