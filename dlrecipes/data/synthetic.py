"""A small synthetic image folder, for trying and testing `folder:` data.

One sub-folder per class, PNG files: the layout `dlrecipes run
image-classification --dataset folder:PATH` reads. Two kinds:

- `stripes` (default): `horizontal`, `vertical` and `diagonal` stripes
  (angle jittered by +-8 degrees) of random period, phase and colours.
- `shapes`: a `circle`, `square` or `triangle` of random size, position
  and colour on a background of another random colour.

Colours and positions are random and every pixel is noisy, so neither the
mean colour nor any fixed pixel tells the classes apart: a classifier on
raw pixels stays near chance, a convolution sees the orientation (stripes)
or the outline (shapes; much harder to learn from a few images). Seeded:
the same arguments write the same bytes. NumPy and the standard library
only (PNG written by hand).

Command:

    python -m dlrecipes.data.synthetic OUT_DIR [--kind stripes|shapes]
        [--per-class 40] [--size 32] [--seed 0]
"""

import argparse
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np

from dlrecipes.errors import UsageError, choices_message

KINDS = {"stripes": ("horizontal", "vertical", "diagonal"),
         "shapes": ("circle", "square", "triangle")}
NOISE = 24.0  # standard deviation of the pixel noise (0..255 scale)


def png_bytes(image):
    """An RGB uint8 array `(height, width, 3)` as PNG file bytes."""
    image = np.ascontiguousarray(image, dtype="uint8")
    height, width, _ = image.shape
    rows = b"".join(b"\x00" + row.tobytes() for row in image)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def _distinct_colours(rng):
    """A background and a foreground colour at least 120 apart (L2)."""
    while True:
        background, foreground = rng.uniform(0, 255, (2, 3))
        if np.linalg.norm(background - foreground) >= 120:
            return background, foreground


def shape_mask(shape, size, rng):
    """A boolean `(size, size)` mask of one randomly placed `shape`."""
    radius = rng.uniform(0.18, 0.32) * size
    cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
    yy, xx = np.mgrid[:size, :size] + 0.5
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= radius ** 2
    if shape == "square":
        half = radius * 0.85
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    # An upright triangle: apex at the top, base at the bottom.
    top, bottom = cy - radius, cy + radius * 0.8
    half_width = radius * (yy - top) / (bottom - top)
    return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half_width)


def stripe_mask(orientation, size, rng):
    """A boolean `(size, size)` mask of stripes of one orientation."""
    angle = {"vertical": 0.0, "horizontal": 90.0, "diagonal": 45.0}[
        orientation] + rng.uniform(-8, 8)
    period = rng.uniform(5, 9)
    yy, xx = np.mgrid[:size, :size] + 0.5
    t = xx * np.cos(np.radians(angle)) + yy * np.sin(np.radians(angle))
    return (t + rng.uniform(0, period)) % period < period / 2


def class_image(name, size, rng):
    """One `(size, size, 3)` uint8 image of class `name` (of any kind)."""
    background, foreground = _distinct_colours(rng)
    if name in KINDS["stripes"]:
        mask = stripe_mask(name, size, rng)
    else:
        mask = shape_mask(name, size, rng)
    image = np.where(mask[..., None], foreground, background)
    image = image + rng.normal(0, NOISE, image.shape)
    return np.clip(np.round(image), 0, 255).astype("uint8")


def write_folder(root, kind="stripes", per_class=40, size=32, seed=0):
    """Write `per_class` PNG images of each class of `kind` under
    `root/<class>/`.

    Args:
        root: the folder to create; it must not exist or be empty. The
            images are written into a temporary sibling folder that is
            renamed into place, so `root` is whole or absent.
        kind: a key of `KINDS`, "stripes" or "shapes".
        per_class: images per class.
        size: image height and width in pixels.
        seed: NumPy seed; the same arguments write the same files.

    Returns:
        `root`.
    """
    _check_args(root, kind, per_class, size)
    rng = np.random.default_rng(seed)
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".synthetic-", dir=parent)
    try:
        for name in KINDS[kind]:
            os.makedirs(os.path.join(scratch, name))
            for i in range(per_class):
                with open(os.path.join(scratch, name, f"{i:04d}.png"),
                          "wb") as f:
                    f.write(png_bytes(class_image(name, size, rng)))
        if os.path.isdir(root):
            os.rmdir(root)  # empty (checked): replaced by the new folder
        os.rename(scratch, root)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return root


def _check_args(root, kind, per_class, size):
    if os.path.exists(root) and not (os.path.isdir(root)
                                     and not os.listdir(root)):
        raise UsageError("the output folder must not exist or be empty. "
                         f"Received: out_dir={root!r}")
    if per_class < 3:
        raise UsageError("--per-class must be >= 3 (train, validation and "
                         f"test each need one). Received: "
                         f"per_class={per_class}")
    if size < 16:
        raise UsageError(f"--size must be >= 16. Received: size={size}")
    if kind not in KINDS:
        raise UsageError("--kind: " + choices_message("kind", kind, KINDS))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main(argv=None):
    """`python -m dlrecipes.data.synthetic OUT_DIR ...`; returns the exit
    code (2 with one `error: ...` line on bad input)."""
    parser = _Parser(prog="python -m dlrecipes.data.synthetic",
                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to create")
    parser.add_argument("--kind", default="stripes",
                        help=f"{' or '.join(KINDS)} (default stripes)")
    parser.add_argument("--per-class", type=int, default=40,
                        help="images per class (default 40)")
    parser.add_argument("--size", type=int, default=32,
                        help="image size in pixels (default 32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (default 0)")
    try:
        args = parser.parse_args(argv)
        if not 0 <= args.seed < 2 ** 32:
            raise UsageError("--seed must be in 0..2**32-1. Received: "
                             f"seed={args.seed}")
        write_folder(args.out_dir, args.kind, args.per_class, args.size,
                     args.seed)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {args.out_dir}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    print(f"wrote {args.per_class} images of each of "
          f"{', '.join(KINDS[args.kind])} to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
