"""Where clip bytes live: one small interface (four calls), a directory or an
S3-compatible store."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KEY = re.compile(r"^[a-z0-9][a-z0-9./-]{0,200}$")


class ClipStore(Protocol):
    """Keys are ``[a-z0-9./-]`` paths such as ``2026/12/04/clip-ab12.mp4``."""

    def put(self, key: str, source: Path) -> None:
        """Keep the file at ``source`` under ``key`` (moved or copied; replaces)."""
        ...

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; FileNotFoundError when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is not there."""
        ...

    def exists(self, key: str) -> bool: ...


class DirectoryClipStore:
    """Clips as files under ``root``; each put lands by an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key) or ".." in key:
            raise ValueError(f"clip store key {key!r} must match {_KEY.pattern} without '..'")
        return self.root / key

    def put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            out.write(source.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        Path(out.name).replace(target)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3ClipStore:
    """Clips as objects in a bucket of an S3-compatible store (AWS S3, MinIO, Ceph RGW,
    Garage), through boto3 (the ``s3`` extra). Keys get ``prefix`` in front. Credentials come
    from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an
    instance role). A put is one PUT of the whole object, which S3 makes visible atomically;
    boto3 sends a checksum of the body that the store checks before keeping it."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        client: S3Client | None = None,
    ) -> None:
        if prefix and not _KEY.fullmatch(prefix.rstrip("/")):
            raise ValueError(f"clip store prefix {prefix!r} must match {_KEY.pattern}")
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""
        if client is None:
            try:
                import boto3  # noqa: PLC0415 - optional (the s3 extra); only an S3 store needs it
            except ImportError as exc:
                raise RuntimeError(
                    "an S3 clip store needs boto3: pip install 'ioc-province[s3]'"
                ) from exc
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self._s3 = client

    def _key(self, key: str) -> str:
        if not _KEY.fullmatch(key) or ".." in key:
            raise ValueError(f"clip store key {key!r} must match {_KEY.pattern} without '..'")
        return self.prefix + key

    def put(self, key: str, source: Path) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=source.read_bytes(),
            ContentType="video/mp4",
        )

    def read(self, key: str) -> bytes:
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._s3.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"s3://{self.bucket}/{self._key(key)}") from exc
        return answer["Body"].read()

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))  # absent: no error

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
