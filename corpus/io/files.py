"""Files on a filesystem: listing inputs, opening them, and committing stage outputs atomically.

Everything goes through pyarrow.fs, so the same code serves local paths now and ``s3://`` URIs
(``pyarrow.fs.S3FileSystem``) when the cluster work lands. Paths are kept as the user wrote them (relative
paths stay relative), so the provenance recorded in documents is the same on every machine that runs the same
command from the same folder.
"""

from __future__ import annotations

import functools
import posixpath
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Iterable

import pyarrow.fs as pafs


BASE_DIR_ENV = "FORGE_BASE_DIR"
# The file that marks a folder as forge's own (a stage output, its temporary folder, a run folder, sample data).
# A folder without it that holds anything is the user's: nothing in it is ever deleted or replaced.
MARKER = "_FORGE"


class InputError(ValueError):
    """An input path is missing or holds nothing this stage can read (the message names the path)."""


@dataclass(frozen=True, order=True)
class FileEntry:
    path: str
    size: int


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``path`` and the path inside it."""
    if path.startswith(("s3://", "s3a://")):
        return s3_filesystem(), path.split("://", 1)[1]
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), _local(path)


def _local(path: str) -> str:
    """A local path as the driver meant it. Relative paths are kept as written (documents record them so), but an
    executor resolves them against the driver's folder (``FORGE_BASE_DIR``, set for executors by the session
    builder): a worker's own working folder is elsewhere."""
    import os

    base = os.environ.get(BASE_DIR_ENV)
    return os.path.join(base, path) if base and not os.path.isabs(path) else path


def s3_settings() -> dict:
    """S3 settings from the standard AWS environment: region (``AWS_REGION`` / ``AWS_DEFAULT_REGION``) and an
    endpoint override for S3-compatible stores (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``). Credentials are not
    read here: the AWS SDK inside pyarrow takes them from its default chain (environment, profile, instance or
    pod role), so they are never in the config, the stats or the logs."""
    import os

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    out = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        out.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    return out


def _settings_key() -> tuple:
    return tuple(sorted(s3_settings().items()))


def s3_filesystem() -> pafs.FileSystem:
    """One S3 filesystem per process and settings. Retries: the AWS standard strategy (throttling such as Common
    Crawl's SlowDown, 5xx and connection errors, with exponential backoff), 10 attempts."""
    return _s3_filesystem(_settings_key())


@functools.lru_cache(maxsize=None)
def _s3_filesystem(settings: tuple) -> pafs.FileSystem:
    return pafs.S3FileSystem(
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=10),
        allow_bucket_creation=False,
        allow_bucket_deletion=False,
        **dict(settings),
    )


def s3_client():
    """A boto3 S3 client with the same settings, for listing: a prefix with many objects (a Common Crawl segment)
    takes many LIST calls, and boto3's *adaptive* retry mode adds client-side rate limiting to the standard
    backoff when the store answers SlowDown, which pyarrow's S3 client does not offer. 10 attempts."""
    return _s3_client(_settings_key())


@functools.lru_cache(maxsize=None)
def _s3_client(settings: tuple):
    import boto3
    from botocore.config import Config

    settings = dict(settings)
    endpoint = f"{settings['scheme']}://{settings['endpoint_override']}" if "endpoint_override" in settings else None
    return boto3.client(
        "s3",
        region_name=settings["region"],
        endpoint_url=endpoint,
        config=Config(retries={"mode": "adaptive", "max_attempts": 10}),
    )


def reset_s3() -> None:
    """Forget the cached S3 filesystems and clients (after the AWS environment changed: tests, a new endpoint)."""
    _s3_filesystem.cache_clear()
    _s3_client.cache_clear()


def _list_s3(path: str) -> Iterable[FileEntry]:
    """Every object under an s3:// (or s3a://) folder, through boto3's paginator (adaptive retries)."""
    bucket, _, prefix = path.split("://", 1)[1].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):  # folder placeholders
                yield FileEntry(_uri(path, f"{bucket}/{obj['Key']}"), obj["Size"])


def is_object_store(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


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
    if is_object_store(path):
        found: Iterable[FileEntry] = _list_s3(path)
    else:
        found = (
            FileEntry(_uri(path, f.path), f.size)
            for f in fs.get_file_info(pafs.FileSelector(inner, recursive=True))
            if f.type == pafs.FileType.File
        )
    out = []
    for entry in found:
        name = posixpath.basename(entry.path)
        if name.startswith((".", "_")) or name.endswith(".crc"):
            continue
        if wanted and not name.lower().endswith(wanted):
            continue
        out.append(entry)
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
    try:
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(inner)
        elif info.type == pafs.FileType.File:
            fs.delete_file(inner)
    except FileNotFoundError:
        # an object store listed a folder that holds no objects (SeaweedFS's filer keeps emptied folders; pyarrow
        # then finds nothing to delete): it is gone already
        pass


def is_empty(path: str) -> bool:
    """True when ``path`` does not exist or is a folder with nothing in it (on S3: no object under the prefix)."""
    if is_object_store(path):  # one LIST call of one key, however many objects the prefix holds
        if get_type(path) == "file":
            return False
        bucket, _, prefix = path.split("://", 1)[1].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        return not s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("Contents")
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        return True
    if info.type != pafs.FileType.Directory:
        return False
    return not fs.get_file_info(pafs.FileSelector(inner, recursive=False))


def get_type(path: str) -> str:
    """``missing``, ``file`` or ``folder``."""
    fs, inner = filesystem(path)
    kind = fs.get_file_info(inner).type
    return {pafs.FileType.NotFound: "missing", pafs.FileType.File: "file"}.get(kind, "folder")


def write_marker(folder: str, kind: str, name: str) -> None:
    """Mark ``folder`` as forge's (``kind``: stage, run, samples; ``name``: what wrote it)."""
    import json

    from corpus import __version__

    write_text(
        posixpath.join(folder, MARKER),
        json.dumps({"producer": f"corpus {__version__}", "kind": kind, "name": name}) + "\n",
    )


def made_by_forge(folder: str) -> bool:
    """Whether forge wrote ``folder``: it holds the marker, or (outputs of versions before the marker) a
    ``_stats.json`` whose producer is this project."""
    if exists(posixpath.join(folder, MARKER)):
        return True
    stats = posixpath.join(folder, "_stats.json")
    try:
        return exists(stats) and '"producer": "corpus' in read_text(stats)
    except (OSError, UnicodeDecodeError):
        return False


def temporary_sibling(final: str) -> str:
    """A fresh temporary folder beside ``final``, hidden from readers by its leading ``_tmp-``."""
    parent, name = posixpath.split(final.rstrip("/"))
    return posixpath.join(parent, f"_tmp-{name}-{uuid.uuid4().hex[:12]}")


def temporary_siblings(final: str) -> list[str]:
    """The temporary folders of ``final`` that exist (a run killed mid-stage leaves one behind). Only folders
    that forge made (marked, or empty) are listed: a user's folder that happens to share the name is left alone."""
    parent, name = posixpath.split(final.rstrip("/"))
    fs, inner = filesystem(parent or ".")
    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    prefix = f"_tmp-{name}-"
    found = [
        posixpath.join(parent, posixpath.basename(f.path))
        for f in fs.get_file_info(pafs.FileSelector(inner))
        if f.type == pafs.FileType.Directory and posixpath.basename(f.path).startswith(prefix)
    ]
    return sorted(p for p in found if made_by_forge(p) or is_empty(p))


def commit_dir(tmp: str, final: str, marker: str = "_SUCCESS") -> None:
    """Replace ``final`` with ``tmp``. On a local filesystem the rename is atomic; readers also require the
    ``_SUCCESS`` marker that the stage runner writes last, so a half-renamed folder is never taken as done.

    An object store has no rename of folders: the files are copied (server-side) and the temporary ones deleted,
    the marker last, after a previous ``final``'s marker has been deleted first. A copy cut short leaves a folder
    without a marker, which every reader refuses and the next run replaces."""
    fs, inner_tmp = filesystem(tmp)
    _, inner_final = filesystem(final)
    if not is_object_store(final):
        if fs.get_file_info(inner_final).type != pafs.FileType.NotFound:
            fs.delete_dir(inner_final)
        fs.move(inner_tmp, inner_final)
        return
    old_marker = posixpath.join(inner_final, marker)
    if fs.get_file_info(old_marker).type == pafs.FileType.File:
        fs.delete_file(old_marker)
    if fs.get_file_info(inner_final).type == pafs.FileType.Directory:
        fs.delete_dir(inner_final)
    files = [
        f.path for f in fs.get_file_info(pafs.FileSelector(inner_tmp, recursive=True)) if f.type == pafs.FileType.File
    ]
    # the ownership marker first (a copy cut short is still forge's to replace), the success marker last
    files.sort(key=lambda p: (posixpath.basename(p) != MARKER, posixpath.basename(p) == marker))
    for src in files:
        fs.copy_file(src, posixpath.join(inner_final, posixpath.relpath(src, inner_tmp)))
    fs.delete_dir(inner_tmp)


def move_dir(src: str, dest: str) -> None:
    """Move folder ``src`` to ``dest`` (which must not exist): a rename locally; on an object store, which has no
    rename of folders, a server-side copy of each file and the deletion of ``src``."""
    fs, inner_src = filesystem(src)
    _, inner_dest = filesystem(dest)
    if not is_object_store(src):
        fs.move(inner_src, inner_dest)
        return
    for f in fs.get_file_info(pafs.FileSelector(inner_src, recursive=True)):
        if f.type == pafs.FileType.File:
            fs.copy_file(f.path, posixpath.join(inner_dest, posixpath.relpath(f.path, inner_src)))
    fs.delete_dir(inner_src)


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
        os.makedirs(cache_dir, exist_ok=True)
        fs, inner = filesystem(path)
        part = f"{local}.part-{uuid.uuid4().hex[:8]}"  # two tasks copying at once do not share a partial file
        pafs.copy_files(inner, part, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        os.replace(part, local)
    return local
