"""Files on a filesystem: listing inputs, opening them, and committing stage outputs atomically.

Everything goes through pyarrow.fs, so the same code serves local paths now and ``s3://`` URIs
(``pyarrow.fs.S3FileSystem``) when the cluster work lands. Paths are kept as the user wrote them (relative
paths stay relative), so the provenance recorded in documents is the same on every machine that runs the same
command from the same folder.
"""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Iterable

import pyarrow.fs as pafs


class InputError(ValueError):
    """An input path is missing or holds nothing this stage can read (the message names the path)."""


@dataclass(frozen=True, order=True)
class FileEntry:
    path: str
    size: int


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``path`` and the path inside it."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _uri(original: str, inner: str) -> str:
    if "://" in original:
        scheme = original.split("://", 1)[0]
        return f"{scheme}://{inner}"
    return inner


def list_files(path: str, suffixes: Iterable[str] | None = None) -> list[FileEntry]:
    """Files at ``path`` (a file, or a folder searched recursively), sorted by path.

    With ``suffixes``, a folder yields only files whose lower-cased name ends with one of them; a file named
    directly is always returned (the stage then decides whether it can read it). Hidden files and Spark/Hadoop
    markers (``_SUCCESS``, ``.crc``) are skipped.
    """
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{path}: no such file or folder")
    if info.type == pafs.FileType.File:
        return [FileEntry(path, info.size)]
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    out = []
    for f in fs.get_file_info(pafs.FileSelector(inner, recursive=True)):
        if f.type != pafs.FileType.File:
            continue
        name = posixpath.basename(f.path)
        if name.startswith((".", "_")) or name.endswith(".crc"):
            continue
        if wanted and not name.lower().endswith(wanted):
            continue
        out.append(FileEntry(_uri(path, f.path), f.size))
    return sorted(out)


def open_input(path: str) -> BinaryIO:
    fs, inner = filesystem(path)
    return fs.open_input_file(inner)


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def read_text(path: str) -> str:
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as f:
        return f.read().decode("utf-8")


def write_text(path: str, text: str) -> None:
    fs, inner = filesystem(path)
    with fs.open_output_stream(inner) as f:
        f.write(text.encode("utf-8"))


def make_dirs(path: str) -> None:
    fs, inner = filesystem(path)
    fs.create_dir(inner, recursive=True)


def remove(path: str) -> None:
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(inner)
    elif info.type == pafs.FileType.File:
        fs.delete_file(inner)


def temporary_sibling(final: str) -> str:
    """A fresh temporary folder beside ``final``, hidden from readers by its leading ``_tmp-``."""
    parent, name = posixpath.split(final.rstrip("/"))
    return posixpath.join(parent, f"_tmp-{name}-{uuid.uuid4().hex[:12]}")


def commit_dir(tmp: str, final: str) -> None:
    """Replace ``final`` with ``tmp``. On a local filesystem the rename is atomic; readers also require the
    ``_SUCCESS`` marker that the stage runner writes last, so a half-renamed folder is never taken as done."""
    fs, inner_tmp = filesystem(tmp)
    _, inner_final = filesystem(final)
    if fs.get_file_info(inner_final).type != pafs.FileType.NotFound:
        fs.delete_dir(inner_final)
    fs.move(inner_tmp, inner_final)


def upload(local: str, dest: str) -> None:
    """Copy a local file to ``dest`` (any filesystem), through a temporary name renamed into place."""
    fs, inner = filesystem(dest)
    fs.create_dir(posixpath.dirname(inner), recursive=True)
    tmp = f"{inner}.tmp-{uuid.uuid4().hex[:8]}"
    pafs.copy_files(local, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    fs.move(tmp, inner)


def local_copy(path: str, cache_dir: str) -> str:
    """``path`` as a local file: itself when local, else a copy in ``cache_dir`` (for libraries such as fastText
    that only open local paths)."""
    if "://" not in path:
        return path
    import os

    local = os.path.join(cache_dir, uuid.uuid5(uuid.NAMESPACE_URL, path).hex + "-" + posixpath.basename(path))
    if not os.path.exists(local):
        fs, inner = filesystem(path)
        pafs.copy_files(inner, local + ".part", source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        os.replace(local + ".part", local)
    return local
