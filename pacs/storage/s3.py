"""S3 / MinIO as the object store of the production shape, through the ``minio`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
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
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 bucket {self.bucket}: {exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        # An S3 PUT is durable when it answers 200; a multipart upload only on completion.
        try:
            self.client.fput_object(self.bucket, key, str(path), content_type="application/dicom")
        except (S3Error, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise StoreUnavailable(f"S3 put {key}: {exc}") from exc

    def _read(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        response = None
        try:
            response = self.client.get_object(self.bucket, key, offset=offset, length=length)
            return response.read()
        except S3Error as exc:
            if exc.code in _MISSING:
                raise KeyError(key) from None
            raise StoreUnavailable(f"S3 get {key}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 get {key}: {exc}") from exc
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def get(self, key: str) -> bytes:
        return self._read(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._read(key, start, length)

    def open_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise KeyError(key) from None
            raise StoreUnavailable(f"S3 get {key}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 get {key}: {exc}") from exc
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise StoreUnavailable(f"S3 stat {key}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 stat {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, key)
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 delete {key}: {exc}") from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix.rstrip("/") + "/", recursive=True):
                if obj.object_name is None or obj.is_dir:
                    continue
                assert obj.last_modified is not None
                yield ObjectInfo(key=obj.object_name, size=obj.size or 0, modified=obj.last_modified)
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 list {prefix}: {exc}") from exc
