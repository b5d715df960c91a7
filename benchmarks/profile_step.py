"""Where one step of the helpers' defaults spends its time: torch.profiler's table.

    python benchmarks/profile_step.py                      # this machine's default device, 256 px
    python benchmarks/profile_step.py --device cuda --size 512

On a GPU the step runs without its CUDA graph, so that every kernel shows, and the table
is sorted by GPU time; the sum of the kernels' times is the floor a graph can reach.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import helpers  # noqa: E402
from helpers.optimization import StyleTransfer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps profiled (after 5 unprofiled)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    device = helpers.pick_device(args.device)
    engine = StyleTransfer(helpers.bundled_images("content")["city"], helpers.bundled_images("style")["starry_night"],
                           size_px=args.size, device=str(device), precision=args.precision, cuda_graphs=False)
    engine.run(5)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        engine.run(args.steps)
        if cuda:
            torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / args.steps
    averages = prof.key_averages()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(averages.table(sort_by=key, row_limit=args.rows))
    if cuda:
        kernels = sum(e.self_device_time_total for e in averages if e.device_type == torch.autograd.DeviceType.CUDA)
        launches = sum(e.count for e in averages if e.device_type == torch.autograd.DeviceType.CUDA)
        print(f"{helpers.describe_device(device)}, {args.size} px, precision {args.precision}: "
              f"{wall * 1000:.2f} ms per step on the wall clock (profiled, no CUDA graph); "
              f"GPU kernels {kernels / 1000 / args.steps:.2f} ms per step in {launches / args.steps:.0f} kernels")
    else:
        print(f"{helpers.describe_device(device)}, {args.size} px: {wall * 1000:.1f} ms per step (profiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
