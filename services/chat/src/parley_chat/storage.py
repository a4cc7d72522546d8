"""The object store of attachments: an S3 API (SeaweedFS locally and in the deployments) through
aiobotocore. Clients move the bytes themselves with presigned URLs; chat-api only signs, checks
(HEAD) and deletes, so no file ever passes through a Parley process.

Two signers: the API calls go to the endpoint chat-api reaches (`s3_endpoint_url`), the URLs
handed to clients are signed for the host clients reach (`s3_public_url`): SigV4 signs the
Host, so a URL must be signed for the host it will be sent to.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol
from urllib.parse import quote

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from parley_chat.attachments_config import AttachmentSettings


class StorageUnavailable(RuntimeError):
    """The S3 server did not answer or refused chat-api's credentials (HTTP 503)."""


class ObjectStore(Protocol):
    """What attachments need of an object store (S3 here, a fake in unit tests)."""

    async def presign_put(self, key: str, content_type: str, size: int, expires_s: int) -> str: ...
    async def presign_get(
        self, key: str, filename: str, content_type: str, expires_s: int
    ) -> str: ...
    async def size_of(self, key: str) -> int | None: ...
    async def delete(self, key: str) -> None: ...


def content_disposition(filename: str) -> str:
    """`attachment` (a browser saves the file rather than rendering it on the storage's origin)
    with the name in RFC 6266/5987 form, which carries any Unicode name safely."""
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


def _config() -> AioConfig:
    return AioConfig(
        signature_version="s3v4",
        # path-style URLs (http://host:port/bucket/key): no wildcard DNS for bucket subdomains
        s3={"addressing_style": "path"},
        connect_timeout=3,
        read_timeout=10,
        retries={"max_attempts": 2, "mode": "standard"},
    )


class S3Storage:
    """`ObjectStore` on an S3 server. Open with `async with` (or `open()` / `close()`)."""

    def __init__(self, settings: AttachmentSettings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._stack = contextlib.AsyncExitStack()
        self._api: Any = None
        self._signer: Any = None

    def _client(self, endpoint: str) -> Any:
        s = self.settings
        return get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key,
            config=_config(),
        )

    @property
    def configured(self) -> bool:
        return bool(self.settings.s3_access_key and self.settings.s3_secret_key)

    def _require_configured(self) -> None:
        # without keys botocore would sign with an empty key id: URLs every store refuses
        if not self.configured:
            raise StorageUnavailable("no object store credentials configured (CHAT_S3_*)")

    async def open(self) -> S3Storage:
        s = self.settings
        self._api = await self._stack.enter_async_context(self._client(s.s3_endpoint_url))
        if s.public_url == s.s3_endpoint_url:
            self._signer = self._api
        else:
            self._signer = await self._stack.enter_async_context(self._client(s.public_url))
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> S3Storage:
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (idempotent)."""
        self._require_configured()
        try:
            await self._api.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _status(error) not in (404, 400):
                raise StorageUnavailable(str(error)) from error
        try:
            await self._api.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageUnavailable(str(error)) from error

    async def presign_put(self, key: str, content_type: str, size: int, expires_s: int) -> str:
        """A URL for one PUT of exactly `size` bytes of `content_type`: both headers are signed
        (SignedHeaders), so the server refuses an upload with another type or length."""
        return await self._presign(
            "put_object",
            {
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
            },
            expires_s,
        )

    async def presign_get(self, key: str, filename: str, content_type: str, expires_s: int) -> str:
        return await self._presign(
            "get_object",
            {
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": content_disposition(filename),
            },
            expires_s,
        )

    async def _presign(self, operation: str, params: dict[str, Any], expires_s: int) -> str:
        self._require_configured()
        try:
            url: str = await self._signer.generate_presigned_url(
                operation, Params=params, ExpiresIn=expires_s
            )
        except BotoCoreError as error:  # no credentials configured, say
            raise StorageUnavailable(str(error)) from error
        return url

    async def size_of(self, key: str) -> int | None:
        """The stored object's length, None if there is none."""
        self._require_configured()
        try:
            head = await self._api.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise StorageUnavailable(str(error)) from error
        except (BotoCoreError, OSError, TimeoutError) as error:
            raise StorageUnavailable(str(error)) from error
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing one is not an error (S3 answers 204)."""
        self._require_configured()
        try:
            await self._api.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _status(error) != 404:
                raise StorageUnavailable(str(error)) from error
        except (BotoCoreError, OSError, TimeoutError) as error:
            raise StorageUnavailable(str(error)) from error


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
