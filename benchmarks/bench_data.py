"""Benchmark image folders (unpack a tar, take a subset, replicate by symlinks)
and the run options that `throughput.py` and its peer `peer_lightly.py` share.

Every folder made here has the folder-per-class layout that both
`DataGeneratorSimCLR.from_directory` and torchvision's `ImageFolder` read.
Standard library only: the peer may run in another Python.
"""

import os
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the ImageNet-5 tar is looked for: carried to the GPU machine in .data/,
# or the project's shared data beside the checkout.
DEFAULT_TARS = (
    os.path.join(REPO, ".data", "imagenet5-224.tar"),
    os.path.join(REPO, "..", "shared", "data", "imagenet5-224.tar"),
    os.path.join(REPO, "shared", "data", "imagenet5-224.tar"),
)

BACKBONES = ("small_cnn", "resnet18", "resnet50")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def add_run_args(parser, repeats=3):
    """The options of one timed run, the same for the Keras side and the peer:
    backbone, image and batch size, steps, warm-up, repeats, precision.
    """
    parser.add_argument("--backbone", default="small_cnn", choices=BACKBONES)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="source images per step (B)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps first (compile, workers)"
    )
    parser.add_argument(
        "--repeats", type=int, default=repeats, help="timed repeats; the median is reported"
    )
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)


def default_tar():
    """The first ImageNet-5 tar found, or None."""
    for path in DEFAULT_TARS:
        if os.path.exists(path):
            return os.path.normpath(path)
    return None


def class_files(folder):
    """`{class_name: [file paths]}` of a folder-per-class image folder
    (`simclr_keras.data.folders.scan_class_folders`, grouped by class).
    """
    from simclr_keras.data.folders import scan_class_folders

    paths, labels, class_names = scan_class_folders(folder, "data")
    return {
        name: [p for p, label in zip(paths, labels) if label == c]
        for c, name in enumerate(class_names)
    }


def unpack(tar_path, workdir, subdir=None):
    """Extract `tar_path` into `workdir` and return its class folder.

    Args:
        tar_path: A `.tar`, `.tar.gz` or `.tar.xz` of a folder-per-class tree.
        workdir: Folder to extract into.
        subdir: Folder inside the archive holding the classes, e.g.
            `imagenet5/train`; default: the first `train` folder found, else
            the archive's top folder.

    Returns:
        The path of the class folder.
    """
    with tarfile.open(tar_path, "r:*") as tar:
        tar.extractall(workdir, filter="data")
    if subdir:
        return os.path.join(workdir, subdir)
    for root, dirs, _ in os.walk(workdir):
        if "train" in dirs:
            return os.path.join(root, "train")
    return workdir


def derive(folder, workdir, max_images=None, replicate=1):
    """A symlink copy of `folder`: a class-balanced subset, repeated N times.

    Args:
        folder: Folder-per-class images.
        workdir: Where the new folder is made.
        max_images: Keep about this many images (split evenly over classes).
        replicate: Link every kept image this many times, so that an epoch
            is long enough to keep data-loader workers busy.

    Returns:
        `(path, num_images)`; `path` is `folder` itself when nothing changes.
    """
    classes = class_files(folder)
    if not max_images and replicate <= 1:
        return folder, sum(len(f) for f in classes.values())
    per_class = None if not max_images else max(1, max_images // len(classes))
    out = tempfile.mkdtemp(prefix="bench_images_", dir=workdir)
    total = 0
    for name, files in classes.items():
        os.makedirs(os.path.join(out, name))
        for path in files[:per_class]:
            base = os.path.basename(path)
            for k in range(replicate):
                os.symlink(os.path.abspath(path), os.path.join(out, name, f"r{k}_{base}"))
                total += 1
    return out, total


def prepare(data=None, data_tar=None, tar_subdir=None, max_images=None, replicate=1, workdir=None):
    """Resolve the benchmark's image folder (see `throughput.py --help`).

    Returns:
        `(folder, num_images, workdir)`; `workdir` holds what was made.
    """
    workdir = workdir or tempfile.mkdtemp(prefix="simclr_bench_")
    if data is None:
        data_tar = data_tar or default_tar()
        if data_tar is None:
            raise FileNotFoundError(
                "No image folder: pass --data DIR (one sub-folder per class) or "
                "--data-tar FILE. Looked for ImageNet-5 at: " + ", ".join(DEFAULT_TARS)
            )
        data = unpack(data_tar, workdir, tar_subdir)
    folder, count = derive(data, workdir, max_images, replicate)
    return folder, count, workdir
