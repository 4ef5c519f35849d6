"""Shared pieces of the benchmark suite: statistics, machine and version
description, and BENCHMARKS.md sections that replace only themselves."""

import importlib.metadata
import importlib.util
import os
import platform
import statistics

import keras


def stats(values):
    """(median, min, max) of a non-empty sequence."""
    values = list(values)
    return (statistics.median(values), min(values), max(values))


def fmt_stats(triple, scale=1.0, digits=None):
    """'median (min-max)' of a (median, min, max) triple times `scale`;
    `digits` after the point, or three significant digits (at least no
    decimals) when None."""
    values = [v * scale for v in triple]
    if digits is None:
        big = max(abs(v) for v in values)
        digits = 0 if big >= 100 else 1 if big >= 10 else 2 if big >= 1 \
            else 3
    med, lo, hi = values
    return f"{med:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_missing():
    """None if PyTorch can be imported, else a one-line note."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (`pip install torch` adds it)"
    return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerator():
    """The first non-CPU device's description, or None."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            return None if dev.platform == "cpu" else dev.device_kind
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", "GPU")
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:
        return None
    return None


def environment():
    """Machine and versions as Markdown bullet lines."""
    backend = keras.backend.backend()
    versions = [f"python {platform.python_version()}",
                f"keras {keras.__version__}",
                f"backend {backend} {version(backend) or ''}".rstrip()]
    for dist in ("jax", "jaxlib", "tensorflow", "torch", "numpy"):
        v = version(dist)
        if v and dist != backend:
            versions.append(f"{dist} {v}")
    return [
        f"- machine: {_cpu_name()}, {os.cpu_count()} CPUs; accelerator: "
        f"{accelerator() or 'none'}; {platform.platform()}",
        f"- versions: {', '.join(versions)}",
    ]


def begin_marker(name):
    return f"<!-- BEGIN bench:{name} -->"


def end_marker(name):
    return f"<!-- END bench:{name} -->"


def section(name, title, command, body_lines):
    """A BENCHMARKS.md section for benchmark `name`."""
    return "\n".join([begin_marker(name), f"## {title}", "",
                      f"Command: `{command}`", "", *environment(),
                      *body_lines, end_marker(name), ""])


def write_section(path, name, text):
    """Replace section `name` of the Markdown file `path`, or append it;
    every other section stays as it is."""
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    begin, end = old.find(begin_marker(name)), old.find(end_marker(name))
    if begin != -1 and end > begin:
        new = (old[:begin] + text.rstrip("\n")
               + old[end + len(end_marker(name)):])
    elif old:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        new = "# Benchmarks\n\n" + text
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, path)
