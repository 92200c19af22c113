"""Where recordings live: Django's storage named "recordings" (local disk by default, or an S3-compatible
bucket, see settings.STORAGES), and the local spool a bucket's recordings are written to during the call."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages

CHUNK_BYTES = 64 * 1024


def recordings_storage() -> Storage:
    return storages["recordings"]


def local_path(name: str) -> Path | None:
    """The file of `name` on this machine's disk, or None when the storage is remote."""
    try:
        return Path(recordings_storage().path(name))
    except NotImplementedError:
        return None


def file_to_write(name: str) -> tuple[Path, bool]:
    """Where the recorder writes `name` during the call, and whether that is a spool to upload afterwards."""
    path = local_path(name)
    if path is not None:
        return path, False
    return Path(settings.RECORDINGS_SPOOL_DIR) / name, True


def upload(name: str, spool: Path) -> None:
    """Copy the spooled file to the storage under `name` (replacing an earlier partial upload)."""
    storage = recordings_storage()
    with open(spool, "rb") as file:
        stored = storage.save(name, File(file, name=Path(name).name))
    if stored != name:  # a storage that refuses to overwrite picked another name: keep ours
        storage.delete(name)
        raise OSError(f"The storage stored the recording as {stored!r} instead of {name!r}.")


def size(name: str) -> int:
    return recordings_storage().size(name)


def delete(name: str) -> None:
    recordings_storage().delete(name)


def read_range(name: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes `start`..`end` (inclusive) of the stored file, in chunks, without reading the rest of it."""
    path = local_path(name)
    if path is not None:
        return _file_range(path, start, end)
    bucket = getattr(recordings_storage(), "bucket", None)
    if bucket is not None:  # django-storages' S3: a ranged GET, streamed
        key = recordings_storage()._normalize_name(name)
        body = bucket.Object(key).get(Range=f"bytes={start}-{end}")["Body"]
        return body.iter_chunks(CHUNK_BYTES)
    return _storage_range(name, start, end)


def _file_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    return _chunks(open(path, "rb"), start, end)  # opened now: a missing file fails here, not mid-response


def _storage_range(name: str, start: int, end: int) -> Iterator[bytes]:
    return _chunks(recordings_storage().open(name, "rb"), start, end)


def _chunks(file, start: int, end: int) -> Iterator[bytes]:
    with file:
        file.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = file.read(min(CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def open_for_reading(name: str):
    return recordings_storage().open(name, "rb")
