"""The pure parts of attachments (no server): the upload limits, the signed URLs (host, bound
headers, download disposition), who may read an attachment, and which users.events records the
janitor acts on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from parley_chat.attachments import Attachment, InvalidAttachment, Limits
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.janitor import forgotten_user
from parley_chat.storage import S3Storage, StorageUnavailable, content_disposition
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers

LIMITS = Limits.of(AttachmentSettings())
MIB = 1024 * 1024


def test_allowed_uploads_are_normalised() -> None:
    assert LIMITS.check(" photo.JPG ", "image/jpeg", 10) == ("photo.JPG", "image/jpeg")
    assert LIMITS.check("a.txt", "Text/Plain; charset=UTF-8", 1) == (
        "a.txt",
        "text/plain; charset=utf-8",
    )
    # a decomposed name is stored composed (one spelling per name)
    assert LIMITS.check("e\u0301.pdf", "application/pdf", 25 * MIB)[0] == "\u00e9.pdf"


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "field"),
    [
        ("a.html", "text/html", 10, "content_type"),
        ("a.svg", "image/svg+xml", 10, "content_type"),
        ("a.png", "image/png; x=1", 10, "content_type"),
        ("a.png", "image/png\r\nX-Evil: 1", 10, "content_type"),
        ("a.png", "image/png", 0, "size"),
        ("a.png", "image/png", 25 * MIB + 1, "size"),
        ("", "image/png", 10, "filename"),
        ("   ", "image/png", 10, "filename"),
        ("x" * 256, "image/png", 10, "filename"),
        ("../secret.png", "image/png", 10, "filename"),
        ("dir\\a.png", "image/png", 10, "filename"),
        ("..", "image/png", 10, "filename"),
        ("a\tb.png", "image/png", 10, "filename"),
        ("a\u202eb.png", "image/png", 10, "filename"),  # right-to-left override
    ],
)
def test_uploads_outside_the_limits_are_refused_naming_the_field(
    filename: str, content_type: str, size: int, field: str
) -> None:
    with pytest.raises(InvalidAttachment) as refused:
        LIMITS.check(filename, content_type, size)
    assert refused.value.field == field


def test_the_limits_are_settings() -> None:
    limits = Limits.of(
        AttachmentSettings(attachment_max_bytes=100, attachment_content_types=" Text/CSV,,")
    )
    assert limits.check("a.csv", "text/csv", 100) == ("a.csv", "text/csv")
    with pytest.raises(InvalidAttachment):
        limits.check("a.png", "image/png", 10)
    with pytest.raises(InvalidAttachment):
        limits.check("a.csv", "text/csv", 101)


SIGNING = {"s3_access_key": "key", "s3_secret_key": "secret", "s3_bucket": "files"}


async def test_an_upload_url_binds_type_and_length_and_names_the_public_host() -> None:
    settings = AttachmentSettings(
        s3_endpoint_url="http://seaweedfs:8333",
        s3_public_url="https://files.parley.example.com",
        **SIGNING,
    )
    async with S3Storage(settings) as storage:  # signing needs no server
        url = await storage.presign_put("c/a", "image/png", 1234, 900)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "files.parley.example.com",
        "/files/c/a",
    )
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == ["900"]


async def test_a_download_url_is_short_lived_and_saves_the_file_under_its_name() -> None:
    settings = AttachmentSettings(s3_endpoint_url="http://127.0.0.1:8333", **SIGNING)
    async with S3Storage(settings) as storage:
        url = await storage.presign_get("c/a", 'a "b".txt', "text/plain", 300)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).netloc == "127.0.0.1:8333"  # no public URL: the endpoint itself
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-type"] == ["text/plain"]
    assert query["response-content-disposition"] == ["attachment; filename*=UTF-8''a%20%22b%22.txt"]


async def test_without_credentials_the_store_answers_unavailable_never_a_useless_url() -> None:
    async with S3Storage(AttachmentSettings(s3_access_key="", s3_secret_key="")) as storage:
        with pytest.raises(StorageUnavailable):
            await storage.presign_put("c/a", "image/png", 1, 60)
        with pytest.raises(StorageUnavailable):
            await storage.size_of("c/a")


def test_content_disposition_quotes_every_special_character() -> None:
    assert content_disposition("r\u00e9sum\u00e9;x=1.pdf") == (
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%3Bx%3D1.pdf"
    )


def attachment(uploader: str, message_id: str | None, sent: bool) -> Attachment:
    return Attachment(
        id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
        uploader_id=uploader,
        filename="a.txt",
        content_type="text/plain",
        size=1,
        object_key="c/a",
        created_at=datetime.now(UTC),
        message_id=message_id,
        sent=sent,
    )


def test_an_attachment_is_readable_by_its_uploader_until_a_sent_message_carries_it() -> None:
    ada, bob = "ada", "bob"
    unsent = attachment(ada, None, sent=False)
    claimed_not_appended = attachment(ada, str(uuid.uuid4()), sent=False)
    sent = attachment(ada, str(uuid.uuid4()), sent=True)
    assert unsent.readable_by(ada) and not unsent.readable_by(bob)
    assert claimed_not_appended.readable_by(ada) and not claimed_not_appended.readable_by(bob)
    assert sent.readable_by(ada) and sent.readable_by(bob)  # participation: the route's check


def users_record(event: str, **data: object) -> tuple[list[tuple[str, bytes]], bytes]:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/users",
        type=ce_type("users", event, 1),
        subject="u1",
        time=datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=3,
    )
    return kafka_headers(header_map(envelope)), envelope.data


def test_the_janitor_acts_on_user_forgotten_only() -> None:
    assert forgotten_user(*users_record("UserForgotten", user_id="u1")) == "u1"
    assert forgotten_user(*users_record("UserCreated", user_id="u1")) is None
    assert forgotten_user(*users_record("UserForgotten")) is None  # no user id: skipped
    assert forgotten_user([], b"garbage") is None
