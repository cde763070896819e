"""Object storage: a four-verb ``BlobStore`` with a folder and an S3 backend."""

from pacs.storage.base import BlobStore, ObjectInfo, StoreUnavailable, object_key
from pacs.storage.factory import open_store

__all__ = ["BlobStore", "ObjectInfo", "StoreUnavailable", "object_key", "open_store"]
