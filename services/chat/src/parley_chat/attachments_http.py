"""HTTP routes of attachments (chat-api, routed by nginx for `/v1/attachments` and
`POST /v1/conversations/{id}/attachments`).

- `POST /v1/conversations/{id}/attachments` `{filename, content_type, size}` -> 201
  `{attachment_id, upload_url, method, headers, expires_in_s}`: participants only (anyone
  else gets 404, as for a conversation that does not exist). The client PUTs exactly `size`
  bytes to `upload_url` with the `headers` given (the URL is signed for that type and
  length), then sends a message with `attachment_ids`. An Idempotency-Key makes a retry
  answer the same attachment.
- `GET /v1/attachments/{id}` -> 307 to a signed download URL (valid
  `attachment_download_url_ttl_s`), for the participants of the attachment's conversation once
  a sent message carries it, for its uploader before that; for anyone else it does not exist
  (404), as a conversation's read routes answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from parley_authn import CurrentPrincipal
from parley_commandkit import SHARED, CommandCall, not_found
from parley_http.problems import Problem, try_again_soon
from pydantic import BaseModel, ConfigDict, Field

from parley_chat.attachments import MAX_FILENAME, Attachments, InvalidAttachment
from parley_chat.domain import ConversationNotFound
from parley_chat.storage import StorageUnavailable


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the limits proper (allowed types, the size cap) are the service's settings, checked
    # after the schema; these bounds only keep absurd values out
    filename: str = Field(min_length=1, max_length=4 * MAX_FILENAME)
    content_type: str = Field(min_length=3, max_length=200)
    size: int = Field(ge=1, le=2**53, description="bytes; at most the service's limit (25 MiB)")


class UploadView(BaseModel):
    attachment_id: str
    upload_url: str = Field(description="PUT the bytes here (signed, no bearer token)")
    method: str = "PUT"
    headers: dict[str, str] = Field(description="send exactly these headers with the PUT")
    expires_in_s: int


def _invalid(error: Exception) -> Problem:
    assert isinstance(error, InvalidAttachment)
    entry = {"field": error.field, "message": error.message, "type": "value_error"}
    return Problem(422, "Invalid request", str(error), errors=[entry])


ERRORS = SHARED.extend(
    {
        ConversationNotFound: not_found("no conversation {}"),
        InvalidAttachment: _invalid,
        StorageUnavailable: lambda _: try_again_soon("the file store did not answer; retry"),
    }
)


def attachments_of(request: Request) -> Attachments:
    found: Attachments = request.app.state.attachments
    return found


async def require_participant(request: Request, conversation_id: str, user_id: str) -> None:
    """For anyone but its participants the conversation does not exist (404, as chat's other
    routes answer strangers)."""
    conversation = await request.app.state.chat.conversations.load(conversation_id)
    if not conversation.is_participant(user_id):
        raise ConversationNotFound(conversation_id)


uploads = APIRouter(prefix="/v1/conversations", tags=["attachments"])
downloads = APIRouter(prefix="/v1/attachments", tags=["attachments"])


@uploads.post("/{conversation_id}/attachments", status_code=201, response_model=UploadView)
async def request_upload(conversation_id: uuid.UUID, body: UploadBody, call: CommandCall) -> Any:
    """Ask to upload a file: an attachment id and a signed URL to PUT its bytes to. Allowed
    types and the size cap are the service's settings (422 naming the field otherwise)."""
    me, cid = call.principal.user_id, str(conversation_id)

    async def requested() -> UploadView:
        await require_participant(call.request, cid, me)
        key = call.context("attach", cid).idempotency_key
        upload = await attachments_of(call.request).request_upload(
            cid, me, body.filename, body.content_type, body.size, key
        )
        return UploadView(
            attachment_id=upload.attachment_id,
            upload_url=upload.upload_url,
            headers={"Content-Type": upload.content_type, "Content-Length": str(upload.size)},
            expires_in_s=upload.expires_in_s,
        )

    return await ERRORS.answer(requested())


@downloads.get(
    "/{attachment_id}",
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "Location: the signed download URL"}},
)
async def download(attachment_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> Any:
    """Redirect to a short-lived signed URL of the file."""

    async def located() -> RedirectResponse:
        attachments = attachments_of(request)
        found = await attachments.get(str(attachment_id))
        missing = Problem(404, "Not Found", f"no attachment {attachment_id}")
        if found is None or not found.readable_by(principal.user_id):
            raise missing
        conversation = await request.app.state.chat.conversations.load(found.conversation_id)
        if not conversation.is_participant(principal.user_id):
            raise missing
        url = await attachments.download_url(found)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})

    return await ERRORS.answer(located())


def include_routes(app: FastAPI) -> None:
    app.include_router(uploads)
    app.include_router(downloads)
