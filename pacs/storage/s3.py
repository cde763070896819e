"""S3 / MinIO as the object store of the production shape, through the ``minio`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

from pacs.storage.base import ObjectInfo, StoreUnavailable

_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


class S3Store:
    """One bucket; every call bounded by short timeouts so a stalled store fails fast."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 15.0,
        retries: int = 1,
        pool_size: int = 32,
    ) -> None:
        # FIELD-NOTES: the SDK's own client waits 300 s to connect and 300 s to read, with
        # retries; a pool smaller than the association cap would serialise the receivers.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=pool_size,
            retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.bucket = bucket
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http
        )

    def ensure_bucket(self) -> None:
        with _translated("make bucket", self.bucket):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

    def put_file(self, key: str, path: Path) -> None:
        # An S3 PUT is durable when it answers 200; a multipart upload only on completion.
        with _translated("put", key):
            self.client.fput_object(self.bucket, key, str(path), content_type="application/dicom")

    def _read(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        with _translated("get", key):
            response = self.client.get_object(self.bucket, key, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def get(self, key: str) -> bytes:
        return self._read(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._read(key, start, length)

    def open_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with _translated("get", key):
            response = self.client.get_object(self.bucket, key)
            try:
                yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            with _translated("stat", key):
                self.client.stat_object(self.bucket, key)
        except KeyError:
            return False
        return True

    def delete(self, key: str) -> None:
        with _translated("delete", key):
            self.client.remove_object(self.bucket, key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder = prefix.rstrip("/") + "/" if prefix else None
        with _translated("list", prefix):
            for obj in self.client.list_objects(self.bucket, prefix=folder, recursive=True):
                if obj.object_name is None or obj.is_dir:
                    continue
                assert obj.last_modified is not None
                yield ObjectInfo(key=obj.object_name, size=obj.size or 0, modified=obj.last_modified)


@contextmanager
def _translated(action: str, key: str) -> Iterator[None]:
    """The store's two failure kinds: a missing object is ``KeyError``; anything else the SDK,
    the connection or the server raises is ``StoreUnavailable``."""
    try:
        yield
    except S3Error as exc:
        if exc.code in _MISSING:
            raise KeyError(key) from None
        raise StoreUnavailable(f"S3 {action} {key}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise StoreUnavailable(f"S3 {action} {key}: {exc}") from exc
