"""The zip structure of a `.keras` archive, inspected without extracting:
entry names, counts, sizes, ratios, overlaps; then its config and weights."""

import io
import json
import re
import stat
import struct
import zipfile
import zlib

from dlrecipes.saving.config import check_config
from dlrecipes.saving.hdf5 import check_hdf5
from dlrecipes.saving.rules import (
    ASSETS_PREFIX, CONFIG_NAME, CONVERT_HINT, EMPTY_ZIP_MAGIC, HDF5_MAGIC,
    MAX_CENTRAL_DIRECTORY_BYTES, MAX_COMPRESSED_WEIGHTS_BYTES,
    MAX_CONFIG_BYTES, MAX_ENTRIES, MAX_METADATA_BYTES, MAX_RATIO,
    MAX_TOTAL_BYTES, METADATA_NAME, WEIGHTS_NAME, ZIP_MAGIC, ModelFormatError,
    UnsafeModelError, first_line)




def check_archive(f, size):
    magic = f.read(8)
    if magic.startswith(HDF5_MAGIC):
        raise ModelFormatError("a legacy HDF5 (.h5) Keras model, not a "
                               ".keras archive (the only format dlrecipes "
                               f"loads): {CONVERT_HINT}")
    if magic.startswith(EMPTY_ZIP_MAGIC):
        raise ModelFormatError("empty zip archive, not a .keras model")
    if not magic.startswith(ZIP_MAGIC):
        raise ModelFormatError("not a .keras model (a .keras file is a zip "
                               "archive)")
    cd_offset = _check_end_record(f, size)
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
            NotImplementedError, struct.error) as e:
        raise ModelFormatError(f"truncated or corrupt archive "
                               f"({first_line(e)})") from None
    with archive:
        infos = _check_entries(f, archive.infolist(), cd_offset, size)
        metadata = _read_json(archive, infos[METADATA_NAME],
                              MAX_METADATA_BYTES)
        if not isinstance(metadata, dict):
            raise ModelFormatError(f"{METADATA_NAME} is not a JSON object")
        config = _read_json(archive, infos[CONFIG_NAME], MAX_CONFIG_BYTES)
        if not isinstance(config, dict):
            raise ModelFormatError(f"{CONFIG_NAME} is not a JSON object")
        check_config(config)
        _check_weights(f, archive, infos[WEIGHTS_NAME])
    return config


def _check_end_record(f, size):
    """Bound the central directory before zipfile parses it; its offset."""
    tail_size = min(size, 22 + 0xFFFF)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    pos = tail.rfind(EMPTY_ZIP_MAGIC)
    # The end record is the last thing in the file, after its comment.
    while pos >= 0 and (len(tail) - pos < 22 or pos + 22 + struct.unpack(
            "<H", tail[pos + 20:pos + 22])[0] != len(tail)):
        pos = tail.rfind(EMPTY_ZIP_MAGIC, 0, pos)
    if pos < 0:
        raise ModelFormatError("truncated or corrupt archive (no zip end "
                               "record)")
    entries, cd_size, cd_offset = struct.unpack("<xxxxxxxxxxHII",
                                                tail[pos:pos + 20])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        locator = tail[pos - 20:pos] if pos >= 20 else b""
        if not locator.startswith(b"PK\x06\x07"):
            raise ModelFormatError("truncated or corrupt archive (bad zip64 "
                                   "locator)")
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        f.seek(record_offset)
        record = f.read(56)
        if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
            raise ModelFormatError("truncated or corrupt archive (bad zip64 "
                                   "end record)")
        entries, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
    if entries > MAX_ENTRIES:
        raise UnsafeModelError(f"the archive has {entries} entries (at most "
                               f"{MAX_ENTRIES} allowed)")
    if cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise UnsafeModelError(f"the zip directory is {cd_size} bytes (at "
                               f"most {MAX_CENTRAL_DIRECTORY_BYTES} allowed)")
    if cd_offset + cd_size > size:
        raise ModelFormatError("truncated or corrupt archive (the zip "
                               "directory lies past the end of the file)")
    return cd_offset


def _check_entries(f, infos, cd_offset, size):
    """Names, flags, sizes and layout of every entry; the named entries."""
    by_name, total, spans = {}, 0, []
    for info in infos:
        name = info.filename
        _check_entry_name(name)
        if name in by_name:
            raise UnsafeModelError(f"the archive holds {name!r} twice")
        by_name[name] = info
        if info.flag_bits & 0x1:
            raise UnsafeModelError(f"entry {name!r} is encrypted")
        if (info.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
            raise UnsafeModelError(f"entry {name!r} is a symbolic link")
        if info.compress_type not in (zipfile.ZIP_STORED,
                                      zipfile.ZIP_DEFLATED):
            raise ModelFormatError(f"entry {name!r} uses an unsupported "
                                   f"compression (method "
                                   f"{info.compress_type})")
        if (info.compress_type == zipfile.ZIP_STORED
                and info.file_size != info.compress_size):
            raise UnsafeModelError(f"entry {name!r} declares {info.file_size}"
                                   f" bytes but stores {info.compress_size}")
        if (info.file_size > 1 << 20
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise UnsafeModelError(
                f"entry {name!r} expands {info.compress_size} bytes to "
                f"{info.file_size} (a decompression bomb)")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise UnsafeModelError(f"the archive declares more than "
                                   f"{MAX_TOTAL_BYTES >> 30} GiB of content")
        if total > MAX_RATIO * size + (64 << 20):
            raise UnsafeModelError(f"the archive expands {size} bytes to more "
                                   f"than {total} (a decompression bomb)")
        spans.append((info.header_offset, data_span(f, info), name))
    _check_layout(spans, cd_offset)
    for required in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME):
        if required not in by_name:
            raise ModelFormatError(f"not a .keras model: the archive has no "
                                   f"{required}")
    for name, limit in ((CONFIG_NAME, MAX_CONFIG_BYTES),
                        (METADATA_NAME, MAX_METADATA_BYTES)):
        if by_name[name].file_size > limit:
            raise UnsafeModelError(f"{name} declares {by_name[name].file_size}"
                                   f" bytes (at most {limit} allowed)")
    return by_name


def _check_entry_name(name):
    shown = repr(name[:80])
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeModelError(f"entry name {shown} is not a plain path")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeModelError(f"entry name {shown} is an absolute path")
    parts = name.split("/")
    if ".." in parts or "." in parts or "" in parts[:-1]:
        raise UnsafeModelError(f"entry name {shown} leaves its folder")
    if name not in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME) and not (
            name.startswith(ASSETS_PREFIX)):
        raise UnsafeModelError(f"unexpected entry {shown} (a .keras archive "
                               f"holds {CONFIG_NAME}, {METADATA_NAME}, "
                               f"{WEIGHTS_NAME} and assets/)")


def data_span(f, info):
    """(start, end) of an entry's stored data, from its local header."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) < 30 or not header.startswith(ZIP_MAGIC):
        raise ModelFormatError(f"truncated or corrupt archive (entry "
                               f"{info.filename!r} has no local header)")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if f.read(name_len) != info.orig_filename.encode(encoding):
        raise UnsafeModelError(f"entry {info.filename!r} has a different name"
                               f" in its local header")
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size


def _check_layout(spans, cd_offset):
    """Entries must not overlap each other or the central directory."""
    spans.sort()
    end = 0
    for header_offset, (start, stop), name in spans:
        if header_offset < end:
            raise UnsafeModelError(f"entry {name!r} overlaps another entry "
                                   f"(a zip bomb)")
        end = stop
    if end > cd_offset:
        raise ModelFormatError("truncated or corrupt archive (entries run "
                               "into the zip directory)")


def read_capped(archive, info, limit):
    """An entry's bytes, read in 1 MiB steps: a lying size header costs at
    most `limit` bytes (zipfile stops at the declared size and then fails
    the CRC check)."""
    chunks, total = [], 0
    try:
        with archive.open(info) as stream:
            while total <= limit:
                chunk = stream.read(min(1 << 20, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError) as e:
        raise ModelFormatError(
            f"truncated or corrupt entry {info.filename!r} "
            f"({first_line(e)})") from None
    if total > limit:
        raise UnsafeModelError(f"{info.filename} is larger than {limit} "
                               f"bytes")
    return b"".join(chunks)


def _read_json(archive, info, limit):
    data = read_capped(archive, info, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"{info.filename} is not valid JSON "
                               f"({first_line(e)})") from None
    except RecursionError:
        raise UnsafeModelError(f"{info.filename} is nested too deeply") \
            from None




class _EntryReader(io.RawIOBase):
    """A read-only, seekable view of a stored zip entry (no copy)."""

    def __init__(self, f, start, size):
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos,
                io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _check_weights(f, archive, info):
    if info.compress_type == zipfile.ZIP_STORED:
        start, _ = data_span(f, info)
        stream = _EntryReader(f, start, info.file_size)
    elif info.file_size <= MAX_COMPRESSED_WEIGHTS_BYTES:
        stream = io.BytesIO(read_capped(archive, info, info.file_size))
    else:
        raise UnsafeModelError(f"{WEIGHTS_NAME} is compressed and larger than"
                               f" {MAX_COMPRESSED_WEIGHTS_BYTES >> 30} GiB")
    check_hdf5(stream, info.file_size, WEIGHTS_NAME)
