"""Peer benchmark: PyTorch + lightly SimCLR, end to end on an image folder.

torchvision `ImageFolder` -> lightly `SimCLRTransform` (two views per image,
on the CPU, in DataLoader workers) -> backbone -> `SimCLRProjectionHead` ->
lightly `NTXentLoss`. Run by `throughput.py` as a subprocess (it may live in
another Python, `--peer-python`); prints one line `PEER_RESULT {json}`.

Usage:
    python benchmarks/peer_lightly.py --data DIR --backbone resnet50 \
        --image-size 224 --batch-size 256 --steps 30 --precision mixed_bfloat16
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import bench_data  # beside this file: on sys.path when run as a script


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with one sub-folder per class")
    bench_data.add_run_args(p, repeats=1)
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count(),
        help="DataLoader workers (default: every core)",
    )
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur probability")
    p.add_argument("--jitter-strength", type=float, default=1.0)
    return p.parse_args(argv)


def small_cnn(nn):
    def cbr(cin, cout, stride):
        return [
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *cbr(3, 32, 1), *cbr(32, 64, 2), *cbr(64, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ), 128


def build_backbone(name, image_size):
    """Twins of simclr_keras/backbones.py, pooled and flattened."""
    import torch.nn as nn
    import torchvision

    if name == "small_cnn":
        return small_cnn(nn)
    net = getattr(torchvision.models, name)(weights=None)
    if name == "resnet18" and image_size <= 64:  # CIFAR stem, as in simclr_keras/backbones.py
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


HEAD_DIMS = {"small_cnn": (128, 64), "resnet18": (512, 128), "resnet50": (2048, 128)}


def main(argv=None):
    args = parse_args(argv)
    import torch
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from torchvision.datasets import ImageFolder

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = True
    transform = SimCLRTransform(
        input_size=args.image_size,
        cj_strength=args.jitter_strength,
        gaussian_blur=args.blur,
        normalize=None,
    )
    dataset = ImageFolder(args.data, transform=transform)
    if len(dataset) < args.batch_size:
        raise ValueError(
            f"--batch-size {args.batch_size} exceeds the {len(dataset)} images in {args.data}"
        )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=cuda,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers > 0 else None,
    )
    backbone, dim = build_backbone(args.backbone, args.image_size)
    hidden, out = HEAD_DIMS[args.backbone]
    model = torch.nn.Sequential(backbone, SimCLRProjectionHead(dim, hidden, out)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    criterion = NTXentLoss(temperature=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp_dtype = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(
        args.precision
    )
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype == torch.float16)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(x0, x1):
        x = torch.cat([x0, x1]).to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None and cuda):
            z = model(x)
            z0, z1 = z.float().chunk(2)
            loss = criterion(z0, z1)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    def batches():
        while True:
            for (x0, x1), _ in loader:
                yield x0, x1

    model.train()
    # The model alone on one batch of views held on the device: what the
    # end-to-end loop could reach if the CPU augmentation kept up. Measured
    # first, before DataLoader workers exist to compete for the cores.
    views = torch.utils.data.default_collate([dataset[i][0] for i in range(args.batch_size)])
    x0, x1 = views[0].to(device), views[1].to(device)
    for _ in range(max(1, args.warmup)):
        step(x0, x1)
    bare = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step(x0, x1)
        sync()
        bare.append(args.steps * args.batch_size / (time.perf_counter() - start))
    stream = batches()
    for _ in range(args.warmup):
        step(*next(stream))
    sync()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step(*next(stream))
        sync()
        rates.append(args.steps * args.batch_size / (time.perf_counter() - start))
    result = {
        "images_per_s": statistics.median(rates),
        "runs": rates,
        "bare_images_per_s": statistics.median(bare),
        "bare_runs": bare,
        "loss": float(loss),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "workers": args.workers,
        "torch_threads": torch.get_num_threads(),
        "num_images": len(dataset),
        "torch": torch.__version__,
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }
    print("PEER_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
