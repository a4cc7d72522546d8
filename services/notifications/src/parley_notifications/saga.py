"""The notifications service as a registration-saga participant (`notifications.commands`):
- PrepareNotifications: record the default preferences, then mail the verification code. The
  code comes from the auth service's internal endpoint (auth keeps only its keyed hash, and
  the code never travels on Kafka); this service only delivers it.
- NotifyRegistrationFailed: the compensation; tells the registrant the registration failed.

Idempotent by command id (the preferences append uses it as idempotency key; the
saga_commands log replays the first reply, so a retried command mails nothing twice). The one
window left is a crash after the SMTP server accepted a mail and before the reply was logged:
the retry then mails again (a second code, which replaces the first). Mail is at-least-once.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from parley_commandkit import Context, Kit
from parley_eventstore.commandlog import SagaCommandLog
from parley_eventstore.records import Metadata
from parley_messaging.participant import Handler, serve_forever
from parley_messaging.saga import Rejected, SagaCommand
from parley_privacy.fields import FieldCipher

from parley_notifications import mail
from parley_notifications.handlers import Repositories

CODE_PATH = "/internal/v1/verification-codes"


@dataclass
class CodeSource:
    """The auth service's internal endpoint that issues verification codes (one pooled
    client: a connection per call would cost more than the call)."""

    base_url: str
    token: str | None
    timeout_s: float = 3.0
    _client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def issue(self, user_id: str) -> tuple[str, str, int] | None:
        """(address, code, ttl seconds); None when the address is verified already (nothing
        to send); Rejected when auth has no such account (or it was cancelled)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client().post(CODE_PATH, json={"user_id": user_id}, headers=headers)
        if response.status_code == 409:
            return None
        if response.status_code == 404:
            raise Rejected("auth has no account waiting for verification")
        response.raise_for_status()  # 401 (a misconfigured token) and 5xx: retried, then seen
        body = response.json()
        return str(body["email"]), str(body["code"]), int(body["expires_in"])


def handlers(
    repos: Repositories,
    codes: CodeSource,
    mailer: mail.Mailer,
    mail_from: str,
    cipher: FieldCipher | None = None,
) -> Mapping[str, Handler]:
    async def prepare(command: SagaCommand) -> Mapping[str, Any]:
        ctx = Context(
            Metadata(
                correlation_id=command.saga_id,
                causation_id=command.id,
                actor="registration-saga",
                traceparent=command.traceparent,
            ),
            idempotency_key=command.id,
        )
        outcome = await repos.preferences.execute(
            command.subject,
            lambda prefs: prefs.set_defaults(),
            metadata=ctx.metadata,
            idempotency_key=ctx.idempotency_key,
            result=lambda prefs: {"id": prefs.id, "version": prefs.next_version},
            retries=3,
        )
        issued = await codes.issue(command.subject)
        if issued is None:  # verified already (a late retry): the mail's purpose is met
            return {"preferences_version": outcome.reported_version, "mailed": False}
        address, code, ttl = issued
        await mailer.send(mail.verification_mail(mail_from, address, code, max(1, ttl // 60)))
        return {"preferences_version": outcome.reported_version, "mailed": True}

    async def notify_failure(command: SagaCommand) -> Mapping[str, Any]:
        data = dict(command.data)
        if cipher is not None and data.get("email"):  # sealed as in UserRegistered
            data = await cipher.decrypt("UserRegistered", {"user_id": command.subject, **data})
        address = str(data.get("email") or "")  # "" once the person was forgotten
        if not address:
            return {"mailed": False}
        await mailer.send(mail.registration_failed_mail(mail_from, address))
        return {"mailed": True}

    return {"PrepareNotifications": prepare, "NotifyRegistrationFailed": notify_failure}


def participant(
    kit: Kit,
    repos: Repositories,
    codes: CodeSource,
    mailer: mail.Mailer,
    mail_from: str,
    kafka: str,
) -> Coroutine[Any, Any, None]:
    """The saga's steps served from notifications.commands until the service stops."""
    steps = handlers(repos, codes, mailer, mail_from, kit.cipher)
    return serve_forever("notifications", steps, kafka, kit.stop, commands=SagaCommandLog(kit.pool))
