"""Settings of attachments (pydantic-settings, the service's `CHAT_*` prefix): the S3 server,
the upload limits and the janitor. Their own class beside `config.Settings`, so the object store
is configured (and tested) without the rest of the command service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024

# what people send in a chat: pictures, documents, archives, voice notes and short videos; not
# HTML, SVG or scripts (a browser opening the download would run them on the storage's origin)
DEFAULT_CONTENT_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "application/pdf",
    "text/plain",
    "application/zip",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/webm",
    "audio/wav",
    "video/mp4",
    "video/webm",
    "video/quicktime",
)


class AttachmentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")

    # where chat-api reaches the S3 API (HEAD, DELETE, bucket creation)
    s3_endpoint_url: str = "http://127.0.0.1:8333"
    # the base of the signed URLs handed to clients (the storage's public host); "" = the
    # endpoint above (the local cluster: clients and chat-api reach the same port)
    s3_public_url: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "parley-attachments"
    attachment_max_bytes: int = Field(default=25 * MIB, gt=0)
    # comma-separated media types (parameters such as a charset are allowed on top)
    attachment_content_types: str = ",".join(DEFAULT_CONTENT_TYPES)
    # how long a signed upload URL is valid, and a signed download URL
    attachment_upload_url_ttl_s: int = Field(default=900, gt=0, le=7 * 24 * 3600)
    attachment_download_url_ttl_s: int = Field(default=300, gt=0, le=7 * 24 * 3600)
    # an attachment no sent message refers to this long after its upload was asked is deleted
    attachment_ttl_s: float = Field(default=3600.0, gt=0)
    # the janitor: how often it looks for expired attachments; its users.events consumer group
    attachment_sweep_every_s: float = Field(default=60.0, gt=0)
    attachment_janitor: bool = True
    attachment_consumer_group: str = "chat-attachments"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"

    @property
    def public_url(self) -> str:
        return self.s3_public_url or self.s3_endpoint_url
