"""Build the configured ``BlobStore``."""

from __future__ import annotations

from pacs.settings import Settings, StorageBackend
from pacs.storage.base import BlobStore
from pacs.storage.folder import FolderStore


def open_store(settings: Settings, *, create_bucket: bool = True) -> BlobStore:
    """The store the settings name. Raises ``StoreUnavailable`` when S3 cannot be reached."""
    if settings.storage_backend is StorageBackend.FOLDER:
        return FolderStore(settings.objects_path)
    # Imported here: minio and urllib3 add ~10 MB to every process, each receiver worker included.
    from pacs.storage.s3 import S3Store

    store = S3Store(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        connect_timeout_s=settings.s3_connect_timeout_s,
        read_timeout_s=settings.s3_read_timeout_s,
        retries=settings.s3_retries,
        pool_size=max(10, settings.max_associations + 4),
    )
    if create_bucket:
        store.ensure_bucket()
    return store
