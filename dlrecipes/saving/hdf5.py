"""HDF5 weights (`model.weights.h5`, `--weights PATH`): no links or
external storage, no plugin filters, no shape bomb."""

import math

from dlrecipes.errors import UsageError
from dlrecipes.saving.rules import (
    H5_FILTERS, HDF5_MAGIC, MAX_H5_DEPTH, MAX_H5_LINKS, ModelFormatError,
    UnsafeModelError, first_line, show)


def check_hdf5(stream, size, what):
    """Links, storage, filters and declared sizes of the HDF5 file in the
    seekable binary `stream` (`size` bytes); `what` names it."""
    if stream.read(8) != HDF5_MAGIC:
        raise ModelFormatError(f"{what} is not an HDF5 file")
    stream.seek(0)
    import h5py

    try:
        h5 = h5py.File(stream, "r")
    except Exception as e:  # h5py raises OSError and others on bad files
        raise ModelFormatError(f"{what} is not a readable HDF5 file "
                               f"({first_line(e)})") from None
    with h5:
        try:
            _check_h5(h5, 4 * size + (64 << 20), what)
        except UsageError:
            raise
        except Exception as e:
            raise ModelFormatError(f"{what} is corrupt "
                                   f"({first_line(e)})") from None


def _check_h5(h5, limit, what):
    import h5py

    stack, links, declared = [(h5, 0)], 0, 0
    while stack:
        group, depth = stack.pop()
        if depth > MAX_H5_DEPTH:
            raise UnsafeModelError(f"{what} is nested more than "
                                   f"{MAX_H5_DEPTH} groups deep")
        for name in group:
            links += 1
            if links > MAX_H5_LINKS:
                raise UnsafeModelError(f"{what} has more than "
                                       f"{MAX_H5_LINKS} objects")
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                raise UnsafeModelError(f"{what} holds an HDF5 "
                                       f"{type(link).__name__} ({name!r})")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                declared += _check_dataset(obj, name)
                if declared > limit:
                    raise UnsafeModelError(
                        f"{what} declares {declared} bytes of "
                        f"weights but stores far less (a shape bomb)")


def _check_dataset(dataset, name):
    if dataset.external:
        raise UnsafeModelError(f"weight {name!r} is stored in an external "
                               f"file {show(dataset.external[0][0])}")
    if dataset.is_virtual:
        raise UnsafeModelError(f"weight {name!r} is a virtual dataset "
                               f"(reads other files)")
    plist = dataset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in H5_FILTERS:
            raise UnsafeModelError(f"weight {name!r} uses HDF5 filter {code}"
                                   f" (a plugin)")
    shape = dataset.shape or ()
    return math.prod(shape) * dataset.dtype.itemsize
