"""The auth API against the real PostgreSQL and a real SMTP server (aiosmtpd on a free port):
codes are read from the delivered mails, tokens verified with the published JWKS."""

from __future__ import annotations

import asyncio
import base64
import email
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from aiosmtpd.controller import Controller
from parley_auth import expiry, handlers, mail, statuses, tables
from parley_auth.bootstrap import bootstrap
from parley_auth.callers import SCOPES, callers_json, credential
from parley_auth.config import Settings
from parley_auth.domain import RegistrationWasCancelled
from parley_auth.migrate import migrate
from parley_contracts.cloudevents import Envelope, header_map, kafka_headers
from parley_eventstore.records import Metadata
from parley_http.consistency import ConsistencyToken
from parley_http.registration import registration_token
from parley_privacy.fields import FieldCipher

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-42"
SECRET = "test-consistency-secret"
REGISTRATION_SECRET = "test-registration-secret"
# one internal caller holding every scope (test_auth_internal tests the scopes)
INTERNAL_TOKEN = credential("tests", "internal-test-token")
INTERNAL_CALLERS = callers_json({"tests": "internal-test-token"}, {"tests": tuple(SCOPES)})
SIX_DIGITS = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_-]{22})\b")


@dataclass
class Mailbox:
    """What the SMTP server received: (recipients, raw message)."""

    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"

    def to(self, address: str) -> list[bytes]:
        return [raw for rcpt, raw in self.received if address in rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Api:
    client: httpx.AsyncClient
    dsn: str
    mail: Mailbox
    auth: handlers.Auth
    internal: httpx.AsyncClient  # the internal app (its own port when deployed)
    registrations_done: set[str] = field(default_factory=set)

    async def settle(self) -> None:
        """Wait for the background work of the requests so far (mails, resets)."""
        await self.auth.background.drain()

    async def play_saga(self) -> None:
        """Stand in for the registration saga (no Kafka here): for each new registration, do
        what the notifications step does through the internal endpoint (fetch a code, mail
        it) and then the auth step (activate). tests-e2e run the real saga."""
        for event in await self.events():
            user_id = event["stream_id"]
            if event["event_type"] != "UserRegistered" or user_id in self.registrations_done:
                continue
            self.registrations_done.add(user_id)
            issued = await self.internal.post(
                "/internal/v1/verification-codes",
                json={"user_id": user_id},
                headers=bearer(INTERNAL_TOKEN),
            )
            assert issued.status_code == 200, issued.text
            body = issued.json()
            await self.auth.mailer.send(
                mail.code_message("t@parley.test", body["email"], "verify_email", body["code"], 10)
            )
            ctx = handlers.Context(Metadata(correlation_id=user_id))
            await handlers.activate_account(self.auth, user_id, ctx, key=f"test:{user_id}")

    async def code_for(self, address: str) -> str:
        await self.settle()
        await self.play_saga()
        raw = self.mail.to(address)[-1]
        # the code is the only 6-digit number of the whole mail, headers included
        [code] = SIX_DIGITS.findall(raw.decode())
        return code

    async def link_token_for(self, address: str) -> str:
        """The token of the newest password-reset link mailed to `address`."""
        await self.settle()
        raw = self.mail.to(address)[-1]
        text = email.message_from_bytes(raw).get_payload(decode=True).decode()
        [token] = LINK_TOKEN.findall(text)
        assert SIX_DIGITS.findall(raw.decode()) == []  # no code any more, a link
        return str(token)

    async def events(self) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(
                "SELECT stream_id, event_type, data::text AS data FROM events"
                " ORDER BY global_position"
            )
        finally:
            await conn.close()

    async def event_types(self) -> list[str]:
        return [e["event_type"] for e in await self.events()]


def settings_for(dsn: str, smtp_port: int, key_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "postgres_dsn": dsn,
        "smtp_port": smtp_port,
        "key_dir": key_dir,
        "code_resend_interval_s": 0,
        "snapshot_every": 5,
        "internal_callers": INTERNAL_CALLERS,
        "internal_port": 0,  # the internal app in process (api.internal)
        "saga_participant": False,
        "follow_user_status": False,  # tests apply users.events records themselves
        # login delays of 0.1, 0.2, 0.4, 0.8 s (1 s at most) after three free failures
        "login_delay_base_s": 0.1,
        "login_delay_max_s": 1.0,
        "consistency_secret": SECRET,
        "registration_secret": REGISTRATION_SECRET,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def api(
    fresh_database: str, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> AsyncIterator[Api]:
    await migrate(fresh_database)
    box, port = mailbox
    app = bootstrap(
        settings_for(fresh_database, port, tmp_path, bootstrap_admin_emails="boss@example.test")
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        inside = httpx.ASGITransport(app=app.state.internal_app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://auth") as client,
            httpx.AsyncClient(transport=inside, base_url="http://auth") as internal,
        ):
            yield Api(client, fresh_database, box, app.state.auth, internal)


async def register_and_verify(api: Api, address: str, name: str = "Ada") -> str:
    response = await api.client.post(
        "/v1/auth/register", json={"email": address, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 202, response.text
    code = await api.code_for(address.strip().lower())
    verified = await api.client.post("/v1/auth/verify-otp", json={"email": address, "code": code})
    assert verified.status_code == 200, verified.text
    return str(response.json()["user_id"])


async def login(api: Api, address: str, password: str = PASSWORD) -> httpx.Response:
    return await api.client.post("/v1/auth/login", json={"email": address, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INTERNAL = bearer(INTERNAL_TOKEN)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_register_verify_login_refresh_reuse_logout(api: Api) -> None:
    client = api.client
    registered = await client.post(
        "/v1/auth/register",
        json={"email": "  Ada@Example.TEST ", "password": PASSWORD, "name": "Ada"},
    )
    assert registered.status_code == 202, registered.text
    user_id = registered.json()["user_id"]
    assert registered.json()["id"] == user_id and registered.json()["version"] == 1
    token = ConsistencyToken.decode(registered.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id, token.version) == ("auth", user_id, 1)
    # bound to the account (no one is signed in yet); the registration token opens only its
    # status (GET /v1/registrations/{id}, the saga's, with the same secret)
    assert ConsistencyToken.verify(registered.headers["X-Consistency-Token"], SECRET, user_id)
    assert registered.json()["registration_token"] == registration_token(
        REGISTRATION_SECRET, user_id
    )

    # not verified yet: the right password is not enough
    problem(await login(api, "ada@example.test"), 403)

    code = await api.code_for("ada@example.test")
    wrong = "000000" if code != "000000" else "111111"
    problem(
        await client.post("/v1/auth/verify-otp", json={"email": "ada@example.test", "code": wrong}),
        400,
    )
    verified = await client.post(
        "/v1/auth/verify-otp", json={"email": "ADA@example.test", "code": code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"id": user_id, "version": 3}
    # a code is single use
    again = await client.post(
        "/v1/auth/verify-otp", json={"email": "ada@example.test", "code": code}
    )
    problem(again, 400)

    logged_in = await login(api, "ada@example.test")
    assert logged_in.status_code == 200, logged_in.text
    pair = logged_in.json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 300
    assert logged_in.headers["Cache-Control"] == "no-store"

    # the access token verifies with the published JWKS
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(pair["access_token"])["kid"]
    [jwk] = [k for k in jwks["keys"] if k["kid"] == kid]
    claims = jwt.decode(
        pair["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience="parley",
        issuer="parley-auth",
    )
    assert claims["sub"] == user_id and claims["role"] == "user"
    assert claims["sid"] == pair["session_id"]
    assert claims["exp"] - claims["iat"] == 300

    me = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["verified"], me.json()["role"]) == (
        "ada@example.test",
        True,
        "user",
    )
    assert [s["session_id"] for s in me.json()["sessions"]] == [pair["session_id"]]

    # rotation: each refresh gives a new pair
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != pair["refresh_token"]
    assert second["session_id"] == pair["session_id"]

    # the old refresh token again: reuse -> the whole session is revoked
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    problem(reuse, 401)
    problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}),
        401,
    )
    problem(await client.get("/v1/auth/me", headers=bearer(second["access_token"])), 401)
    events = await api.events()
    revoked = [json.loads(e["data"]) for e in events if e["event_type"] == "SessionRevoked"]
    assert revoked and revoked[0]["reason"] == "refresh_token_reuse"
    assert revoked[0]["session_id"] == pair["session_id"]
    assert revoked[0]["user_id"] == user_id
    assert revoked[0]["expires_at"] is not None

    # a new session, then logout: its refresh token stops working, introspection says inactive
    fresh = (await login(api, "ada@example.test")).json()
    active = await client.post(
        "/v1/auth/introspect", data={"token": fresh["access_token"]}, headers=INTERNAL
    )
    assert active.json()["active"] is True and active.json()["sub"] == user_id
    out = await client.post("/v1/auth/logout", headers=bearer(fresh["access_token"]))
    assert out.status_code == 200, out.text
    assert out.json()["id"] == user_id
    assert "X-Consistency-Token" in out.headers
    problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}), 401
    )
    inactive = await client.post(
        "/v1/auth/introspect", json={"token": fresh["access_token"]}, headers=INTERNAL
    )
    assert inactive.json() == {"active": False}
    problem(await client.post("/v1/auth/logout", headers=bearer(fresh["access_token"])), 401)

    assert await api.event_types() == [
        "UserRegistered",
        "AccountActivated",  # by the (stand-in) saga, before the holder verified
        "EmailVerified",
        "UserLoggedIn",
        "SessionRevoked",
        "UserLoggedIn",
        "UserLoggedOut",
    ]
    logged_out = json.loads((await api.events())[-1]["data"])
    assert logged_out["session_id"] == fresh["session_id"]
    assert logged_out["expires_at"] is not None

    # no secret in any event or outbox row
    conn = await asyncpg.connect(api.dsn)
    try:
        published = await conn.fetch("SELECT headers::text AS h, payload FROM outbox")
    finally:
        await conn.close()
    assert len(published) == 7
    everything = " ".join(e["data"] for e in events) + " ".join(
        r["h"] + bytes(r["payload"]).decode() for r in published
    )
    for secret in (PASSWORD, code, pair["refresh_token"], second["refresh_token"], "argon2"):
        assert secret not in everything


async def test_duplicate_registration_answers_alike_and_mails_a_notice(api: Api) -> None:
    first = await register_and_verify(api, "ada@example.test")
    again = await api.client.post(
        "/v1/auth/register",
        json={"email": "ADA@example.test", "password": "another-pass-99", "name": "Eve"},
    )
    assert again.status_code == 202, again.text
    assert set(again.json()) == {"id", "version", "user_id", "status", "registration_token"}
    assert again.json()["user_id"] != first
    await api.settle()
    notice = api.mail.to("ada@example.test")[-1]
    assert SIX_DIGITS.findall(notice.decode()) == []
    assert b"Subject: Someone tried to register" in notice
    assert (await api.event_types()).count("UserRegistered") == 1
    # the first password still works, the second never did
    assert (await login(api, "ada@example.test")).status_code == 200
    problem(await login(api, "ada@example.test", "another-pass-99"), 401)


async def test_failed_logins_grow_a_delay_but_never_lock_the_owner_out(api: Api) -> None:
    """Three wrong passwords are free, then each makes the next attempt wait twice as long
    (429 + Retry-After while waiting, unknown addresses alike); the right password after the
    wait works, so a stranger guessing cannot lock the owner out."""
    await register_and_verify(api, "ada@example.test")
    refusals = []
    for address in ("ada@example.test", "nobody@example.test"):
        for _ in range(3):
            problem(await login(api, address, "wrong-password-1"), 401)
        waits = []
        for _ in range(3):
            delayed = await login(api, address, "wrong-password-1")
            body = problem(delayed, 429)
            assert body["retry_after"] == int(delayed.headers["Retry-After"])
            waits.append(body["retry_after"])
            await asyncio.sleep(0.05 + 0.1 * 2 ** (len(waits) - 1))  # 0.1, 0.2, 0.4 s
            problem(await login(api, address, "wrong-password-1"), 401)  # after the wait
        assert waits == [1, 1, 1]  # Retry-After is whole seconds
        # the sixth failure: 0.8 s to wait, even with the right password
        refusals.append(problem(await login(api, address, PASSWORD), 429))
        if address == "ada@example.test":
            await asyncio.sleep(0.85)
            assert (await login(api, address)).status_code == 200
            # the success cleared the delay: wrong passwords are free again
            problem(await login(api, address, "wrong-password-1"), 401)
    assert refusals[0] == refusals[1]


async def test_the_delays_double_up_to_the_cap(api: Api) -> None:
    delays = tables.Delays(free=3, base_s=1.0, cap_s=60.0)
    assert [delays.seconds(n) for n in range(1, 12)] == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert delays.seconds(10_000) == 60  # no overflow
    # what the database computes agrees with Python's
    conn = await asyncpg.connect(api.dsn)
    try:
        for n in (1, 3, 5, 9, 40):
            seconds = await conn.fetchval(
                f"SELECT extract(epoch FROM {delays.sql('$1::int')})::float8",
                n,
                *delays.args(),
            )
            assert seconds == delays.seconds(n), n
    finally:
        await conn.close()


async def test_parallel_guesses_during_a_delay_get_one_try(api: Api) -> None:
    await register_and_verify(api, "ada@example.test")
    for _ in range(4):
        await login(api, "ada@example.test", "wrong-password-1")
    await asyncio.sleep(0.25)  # the delay after the fourth failure (0.2 s) is over
    answers = await asyncio.gather(
        *(login(api, "ada@example.test", "wrong-password-1") for _ in range(6))
    )
    assert sorted(r.status_code for r in answers) == [401] + [429] * 5


async def test_the_client_address_limit_ignores_forwarded_headers_of_strangers(
    api: Api,
) -> None:
    """X-Forwarded-For is uvicorn's to read, and only from the gateway: the service takes the
    address uvicorn resolved (here the test client's), so a client making up a new
    X-Forwarded-For per request still hits the per-client limit."""
    api.auth.settings.login_max_failures_address = 3
    for i in range(3):
        forged = {"X-Forwarded-For": f"203.0.113.{i}"}
        response = await api.client.post(
            "/v1/auth/login",
            json={"email": f"n{i}@example.test", "password": "wrong-password-1"},
            headers=forged,
        )
        problem(response, 401)
    blocked = await api.client.post(
        "/v1/auth/login",
        json={"email": "other@example.test", "password": "wrong-password-1"},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert problem(blocked, 429)["detail"] == "too many failed logins; retry later"


async def test_unknown_and_known_addresses_take_similar_time(api: Api) -> None:
    await register_and_verify(api, "ada@example.test")

    async def timed(address: str) -> float:
        started = time.perf_counter()
        problem(await login(api, address, "wrong-password-1"), 401)
        return time.perf_counter() - started

    known = sorted([await timed("ada@example.test") for _ in range(3)])[1]
    unknown = sorted([await timed(f"nobody{i}@example.test") for i in range(3)])[1]
    # both verify an argon2 hash: the same order of magnitude, far above a table lookup
    assert known > 0.01 and unknown > 0.01
    assert 0.5 < unknown / known < 2


async def test_password_reset(api: Api) -> None:
    user_id = await register_and_verify(api, "ada@example.test")
    session = (await login(api, "ada@example.test")).json()

    unknown = await api.client.post("/v1/auth/password-reset", json={"email": "no@example.test"})
    assert unknown.status_code == 202 and unknown.json() == {"status": "accepted"}
    await api.settle()
    assert api.mail.to("no@example.test") == []

    known = await api.client.post("/v1/auth/password-reset", json={"email": "ada@example.test"})
    assert known.status_code == 202 and known.json() == unknown.json()
    token = await api.link_token_for("ada@example.test")
    assert len(base64.urlsafe_b64decode(token + "==")) == 16  # 128 bits

    six_digits = await api.client.post(
        "/v1/auth/password-reset/confirm",
        json={"email": "ada@example.test", "token": "123456", "new_password": "brand-new-pass-7"},
    )
    assert problem(six_digits, 422)["errors"][0]["field"] == "token"
    weak = await api.client.post(
        "/v1/auth/password-reset/confirm",
        json={"email": "ada@example.test", "token": token, "new_password": "short"},
    )
    assert problem(weak, 422)["errors"][0]["field"] == "new_password"
    confirmed = await api.client.post(
        "/v1/auth/password-reset/confirm",
        json={"email": "ada@example.test", "token": token, "new_password": "brand-new-pass-7"},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["id"] == user_id

    problem(await login(api, "ada@example.test"), 401)
    assert (await login(api, "ada@example.test", "brand-new-pass-7")).status_code == 200
    # the session opened before the reset is gone
    problem(
        await api.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}),
        401,
    )
    types = await api.event_types()
    assert "PasswordResetRequested" in types and "PasswordChanged" in types
    revoked = [json.loads(e["data"]) for e in await api.events()]
    assert {"user_id": user_id, "session_id": session["session_id"]}.items() <= next(
        d for d in revoked if d.get("reason") == "password_changed"
    ).items()


async def test_the_sixth_wrong_code_answers_alike_for_known_and_unknown_addresses(
    api: Api,
) -> None:
    """Five wrong codes per address and window, then 429 with Retry-After, even for the right
    code; an unknown address gets exactly the same answers (status and body)."""
    await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    code = await api.code_for("ada@example.test")
    wrong = "000000" if code != "000000" else "111111"
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for address in ("ada@example.test", "nobody@example.test"):
        for guess in [wrong] * 5 + [code]:
            response = await api.client.post(
                "/v1/auth/verify-otp", json={"email": address, "code": guess}
            )
            assert response.headers["content-type"] == "application/problem+json"
            answers.setdefault(address, []).append((response.status_code, response.json()))
    assert [status for status, _ in answers["ada@example.test"]] == [400] * 5 + [429]
    assert answers["ada@example.test"] == answers["nobody@example.test"]


async def test_a_code_tried_too_often_is_burnt(api: Api) -> None:
    """Past the attempts of one code (here the address limit is higher), the code is gone and
    the answer is the wrong code's 400: never a 429 only known addresses could get."""
    api.auth.settings.code_max_failures = 50
    await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    code = await api.code_for("ada@example.test")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        verify = {"email": "ada@example.test", "code": wrong}
        problem(await api.client.post("/v1/auth/verify-otp", json=verify), 400)
    burnt = await api.client.post(
        "/v1/auth/verify-otp", json={"email": "ada@example.test", "code": code}
    )
    assert problem(burnt, 400)["detail"] == "the code is wrong or has expired"


async def test_the_daily_cap_burns_the_codes_and_mails_the_owner(api: Api) -> None:
    """A 4th window of guessing (20 wrong codes a day): the codes are burnt, the owner is told,
    and the rest of the day answers 429 to everyone, known address or not."""
    s = api.auth.settings
    s.code_max_failures, s.code_daily_cap = 100, 6
    await register_and_verify(api, "ada@example.test")
    await api.client.post("/v1/auth/password-reset", json={"email": "ada@example.test"})
    token = await api.link_token_for("ada@example.test")
    before = len(api.mail.to("ada@example.test"))
    seen: dict[str, list[int]] = {}
    for address in ("ada@example.test", "nobody@example.test"):
        for _ in range(7):
            response = await api.client.post(
                "/v1/auth/password-reset/confirm",
                json={"email": address, "token": "A" * 22, "new_password": "brand-new-pass-7"},
            )
            seen.setdefault(address, []).append(response.status_code)
        retry_after = int(response.headers["Retry-After"])
        assert 23 * 3600 < retry_after <= 24 * 3600
    assert seen["ada@example.test"] == seen["nobody@example.test"] == [400] * 6 + [429]
    await api.settle()
    [notice] = api.mail.to("ada@example.test")[before:]
    assert b"Subject: Your Parley codes were blocked" in notice
    assert api.mail.to("nobody@example.test") == []
    # the link mailed before is dead, even once the counters are gone
    conn = await asyncpg.connect(api.dsn)
    try:
        await conn.execute("DELETE FROM login_throttle")
    finally:
        await conn.close()
    late = await api.client.post(
        "/v1/auth/password-reset/confirm",
        json={"email": "ada@example.test", "token": token, "new_password": "brand-new-pass-7"},
    )
    problem(late, 400)


async def test_wrong_codes_are_limited_per_client_address_and_overall(api: Api) -> None:
    s = api.auth.settings
    s.code_max_failures_client = 4
    for i in range(4):
        verify = {"email": f"n{i}@example.test", "code": "123456"}
        problem(await api.client.post("/v1/auth/verify-otp", json=verify), 400)
    other = {"email": "fresh@example.test", "code": "123456"}
    problem(await api.client.post("/v1/auth/verify-otp", json=other), 429)
    # from elsewhere: the client limit does not apply, the overall one does
    s.code_max_failures_client, s.code_max_failures_global = 1000, 6
    transport = httpx.ASGITransport(app=api.client._transport.app, client=("192.0.2.9", 9))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as elsewhere:
        first = {"email": "e1@example.test", "code": "123456"}
        problem(await elsewhere.post("/v1/auth/verify-otp", json=first), 400)
        problem(await elsewhere.post("/v1/auth/verify-otp", json=first), 400)
        problem(await elsewhere.post("/v1/auth/verify-otp", json=other), 429)


async def test_change_email(api: Api) -> None:
    user_id = await register_and_verify(api, "ada@example.test")
    await register_and_verify(api, "bob@example.test", "Bob")
    access = (await login(api, "ada@example.test")).json()["access_token"]
    other = (await login(api, "ada@example.test")).json()  # another device of Ada's

    problem(
        await api.client.post(
            "/v1/auth/change-email",
            json={"new_email": "ada@new.test", "password": "wrong-password-1"},
            headers=bearer(access),
        ),
        403,
    )
    problem(
        await api.client.post(
            "/v1/auth/change-email", json={"new_email": "ada@new.test", "password": PASSWORD}
        ),
        401,
    )
    # an address that belongs to someone: the same 202, a notice (no code) to that address
    taken = await api.client.post(
        "/v1/auth/change-email",
        json={"new_email": "bob@example.test", "password": PASSWORD},
        headers=bearer(access),
    )
    assert taken.status_code == 202
    await api.settle()
    assert SIX_DIGITS.findall(api.mail.to("bob@example.test")[-1].decode()) == []

    asked = await api.client.post(
        "/v1/auth/change-email",
        json={"new_email": "Ada@New.test", "password": PASSWORD},
        headers=bearer(access),
    )
    assert asked.status_code == 202, asked.text
    code = await api.code_for("ada@new.test")
    done = await api.client.post(
        "/v1/auth/change-email/confirm", json={"code": code}, headers=bearer(access)
    )
    assert done.status_code == 200, done.text
    assert done.json()["id"] == user_id
    me = (await api.client.get("/v1/auth/me", headers=bearer(access))).json()
    assert me["email"] == "ada@new.test"
    # every other session ended (published as SessionRevoked), the one that changed it stays
    assert [s["session_id"] for s in me["sessions"]] != [] and other["session_id"] not in [
        s["session_id"] for s in me["sessions"]
    ]
    problem(await api.client.get("/v1/auth/me", headers=bearer(other["access_token"])), 401)
    refreshed = {"refresh_token": other["refresh_token"]}
    problem(await api.client.post("/v1/auth/refresh", json=refreshed), 401)
    revoked = [
        json.loads(e["data"]) for e in await api.events() if e["event_type"] == "SessionRevoked"
    ]
    assert [(r["session_id"], r["reason"]) for r in revoked] == [
        (other["session_id"], "email_changed")
    ]
    # the old address is told (its holder may not be the one who changed it)
    await api.settle()
    notice = email.message_from_bytes(api.mail.to("ada@example.test")[-1])
    assert notice["Subject"] == "The email address of your Parley account was changed"
    assert "changed" in notice.get_payload(decode=True).decode()
    assert b"ada@new.test" not in api.mail.to("ada@example.test")[-1]  # not handed out
    assert (await login(api, "ada@new.test")).status_code == 200
    problem(await login(api, "ada@example.test"), 401)
    cipher = FieldCipher(api.auth.subject_keys)  # addresses are stored sealed
    changed = [
        await cipher.open(e["event_type"], json.loads(e["data"])) for e in await api.events()
    ]
    assert {"user_id": user_id, "email": "ada@new.test"} in changed


async def test_admin_role_by_cli_handler_and_by_bootstrap_setting(api: Api) -> None:
    await register_and_verify(api, "ada@example.test")
    ctx = handlers.Context(handlers.Metadata(correlation_id="cli"))
    await handlers.change_role(api.auth, "ADA@example.test", "admin", ctx)
    token = (await login(api, "ada@example.test")).json()["access_token"]
    assert api.auth.keys.verify(token).role == "admin"

    await register_and_verify(api, "boss@example.test", "Boss")
    boss = (await login(api, "boss@example.test")).json()["access_token"]
    assert api.auth.keys.verify(boss).role == "admin"
    types = await api.event_types()
    assert types.count("RoleChanged") == 2


async def test_interrupted_registration_is_completed_by_the_next_request(api: Api) -> None:
    """A crash between the claim (with the password hash) and the append leaves a claim whose
    account has no events; the next request that meets the claim appends the registration."""
    account_id = "0b0b0b0b-0000-4000-8000-000000000001"
    hashed = await api.auth.passwords.hash(PASSWORD)
    await tables.claim_email(api.auth.pool, "ada@example.test", account_id, "Ada", hashed)
    assert await api.event_types() == []
    # the holder retries the registration: same answer as ever, the first one is completed
    retry = await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    assert retry.status_code == 202
    await api.settle()  # the duplicate path completes it after the response
    events = await api.events()
    assert [(e["stream_id"], e["event_type"]) for e in events] == [(account_id, "UserRegistered")]
    # the saga runs for it (activation); a password reset verifies the address: the holder is in
    await api.play_saga()
    await api.client.post("/v1/auth/password-reset", json={"email": "ada@example.test"})
    token = await api.link_token_for("ada@example.test")
    confirmed = await api.client.post(
        "/v1/auth/password-reset/confirm",
        json={"email": "ada@example.test", "token": token, "new_password": "brand-new-pass-7"},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert (await login(api, "ada@example.test", "brand-new-pass-7")).status_code == 200


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/auth/register", {"email": "not-an-email", "password": PASSWORD, "name": "A"}),
        ("/v1/auth/register", {"email": "a@example.test", "password": "alllowercase", "name": "A"}),
        ("/v1/auth/register", {"email": "a@example.test", "password": PASSWORD}),
        (
            "/v1/auth/register",
            {"email": "a@example.test", "password": PASSWORD, "name": "A", "x": 1},
        ),
        ("/v1/auth/register", [1, 2, 3]),
        ("/v1/auth/verify-otp", {"email": "a@example.test", "code": "12345"}),
        ("/v1/auth/verify-otp", {"email": "a@example.test", "code": "abcdef"}),
        ("/v1/auth/login", {"email": "a@example.test"}),
        ("/v1/auth/login", {"email": 7, "password": PASSWORD}),
        ("/v1/auth/refresh", {"refresh_token": ""}),
        ("/v1/auth/password-reset", {}),
        ("/v1/auth/introspect", {"nope": "x"}),
        ("/v1/auth/password-reset/confirm", {"email": "a@x.test", "code": "123456"}),
    ],
)
async def test_malformed_bodies_get_422_problems(api: Api, path: str, payload: object) -> None:
    body = problem(await api.client.post(path, json=payload, headers=INTERNAL), 422)
    assert body["errors"] and all("field" in e and "message" in e for e in body["errors"])


@pytest.mark.parametrize(
    "path", ["/v1/auth/register", "/v1/auth/login", "/v1/auth/introspect", "/v1/auth/refresh"]
)
async def test_garbage_bodies_are_4xx_never_5xx(api: Api, path: str) -> None:
    for content, kind in [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"token=%ff%fe", "application/x-www-form-urlencoded"),
        (b"", "text/plain"),
    ]:
        headers = {"content-type": kind, **INTERNAL}
        response = await api.client.post(path, content=content, headers=headers)
        if path == "/v1/auth/introspect" and response.status_code == 200:
            assert response.json() == {"active": False}  # a token that is no token
            continue
        assert 400 <= response.status_code < 500, (path, content, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    too_big = await api.client.post(path, content=b"x" * 70_000)
    problem(too_big, 413)


async def test_bearer_routes_refuse_missing_and_forged_tokens(api: Api) -> None:
    for headers in ({}, bearer("abc.def.ghi"), {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = await api.client.get("/v1/auth/me", headers=headers)
        problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    introspect = "/v1/auth/introspect"
    assert (await api.client.post(introspect, data={"token": "x"}, headers=INTERNAL)).json() == {
        "active": False
    }


async def test_introspection_needs_the_internal_token(api: Api) -> None:
    """RFC 7662: the caller authenticates; a token holder cannot probe sessions with it."""
    await register_and_verify(api, "ada@example.test")
    access = (await login(api, "ada@example.test")).json()["access_token"]
    for headers in ({}, bearer(access), bearer("nope")):
        refused = await api.client.post(
            "/v1/auth/introspect", data={"token": access}, headers=headers
        )
        problem(refused, 401)
    allowed = await api.client.post("/v1/auth/introspect", data={"token": access}, headers=INTERNAL)
    assert allowed.json()["active"] is True


async def test_openapi_lists_the_routes(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    for path in (
        "/v1/auth/register",
        "/v1/auth/verify-otp",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/password-reset",
        "/v1/auth/password-reset/confirm",
        "/v1/auth/change-email",
        "/v1/auth/change-email/confirm",
        "/v1/auth/introspect",
        "/v1/auth/me",
        "/.well-known/jwks.json",
    ):
        assert path in document["paths"], path
    assert json.dumps(document)  # serialisable


async def test_messages_are_parseable_mail(api: Api) -> None:
    await register_and_verify(api, "ada@example.test")
    await api.client.post("/v1/auth/password-reset", json={"email": "ada@example.test"})
    await api.settle()
    message = email.message_from_bytes(api.mail.to("ada@example.test")[-1])
    assert message["To"] == "ada@example.test"
    assert message["Subject"] == "Reset your Parley password"


async def test_register_mails_nothing_itself(api: Api) -> None:
    """The verification mail is the notifications service's (a registration-saga step)."""
    await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    await api.settle()
    assert api.mail.to("ada@example.test") == []


async def test_the_internal_code_endpoint_needs_the_service_token(api: Api) -> None:
    registered = await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    user_id = registered.json()["user_id"]
    path = "/internal/v1/verification-codes"
    problem(await api.internal.post(path, json={"user_id": user_id}), 401)
    problem(await api.internal.post(path, json={"user_id": user_id}, headers=bearer("nope")), 401)
    problem(
        await api.internal.post(path, json={"user_id": "x"}, headers=bearer(INTERNAL_TOKEN)), 422
    )
    unknown = {"user_id": "0b0b0b0b-0000-4000-8000-000000000009"}
    problem(await api.internal.post(path, json=unknown, headers=bearer(INTERNAL_TOKEN)), 404)
    first = await api.internal.post(path, json={"user_id": user_id}, headers=bearer(INTERNAL_TOKEN))
    second = await api.internal.post(
        path, json={"user_id": user_id}, headers=bearer(INTERNAL_TOKEN)
    )
    assert first.json()["email"] == "ada@example.test"
    # a new code replaces the previous one
    old = await api.client.post(
        "/v1/auth/verify-otp", json={"email": "ada@example.test", "code": first.json()["code"]}
    )
    if first.json()["code"] != second.json()["code"]:
        problem(old, 400)
    ok = await api.client.post(
        "/v1/auth/verify-otp", json={"email": "ada@example.test", "code": second.json()["code"]}
    )
    assert ok.status_code == 200, ok.text
    # verified: nothing left to verify
    problem(
        await api.internal.post(path, json={"user_id": user_id}, headers=bearer(INTERNAL_TOKEN)),
        409,
    )


async def test_cancelled_registration_frees_the_address(api: Api) -> None:
    registered = await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    user_id = registered.json()["user_id"]
    ctx = handlers.Context(Metadata(correlation_id=user_id))
    await handlers.cancel_registration(api.auth, user_id, "registration_failed", ctx, key="c1")
    await handlers.cancel_registration(api.auth, user_id, "registration_failed", ctx, key="c1")
    with pytest.raises(RegistrationWasCancelled):
        await handlers.activate_account(api.auth, user_id, ctx, key="a1")
    assert await api.event_types() == ["UserRegistered", "RegistrationCancelled"]
    problem(await login(api, "ada@example.test"), 401)
    again = await api.client.post(
        "/v1/auth/register", json={"email": "ada@example.test", "password": PASSWORD, "name": "A"}
    )
    assert again.json()["user_id"] != user_id
    assert (await api.events())[-1]["stream_id"] == again.json()["user_id"]


async def test_wrong_codes_are_limited_per_address_across_codes(api: Api) -> None:
    """New reset codes do not buy new guesses; an unknown address behaves the same."""
    await register_and_verify(api, "ada@example.test")
    for address in ("ada@example.test", "nobody@example.test"):
        statuses = []
        for _ in range(3):
            await api.client.post("/v1/auth/password-reset", json={"email": address})
            await api.settle()
            for _ in range(2):  # under the per-code limit of 5
                response = await api.client.post(
                    "/v1/auth/password-reset/confirm",
                    json={"email": address, "token": "B" * 22, "new_password": "brand-new-pass-7"},
                )
                statuses.append(response.status_code)
        # 5 wrong tokens per window, whatever the number of links mailed
        assert statuses == [400] * 5 + [429], (address, statuses)
        assert int(response.headers["Retry-After"]) > 0


async def test_notices_are_rate_limited_per_address(api: Api) -> None:
    await register_and_verify(api, "ada@example.test")
    before = len(api.mail.to("ada@example.test"))
    for _ in range(6):
        again = await api.client.post(
            "/v1/auth/register",
            json={"email": "ada@example.test", "password": PASSWORD, "name": "Ada"},
        )
        assert again.status_code == 202
    await api.settle()
    assert len(api.mail.to("ada@example.test")) - before == 3


async def test_admin_cli_grants_the_role(api: Api) -> None:
    import asyncio
    import os
    import sys

    await register_and_verify(api, "ada@example.test")
    env = {
        **os.environ,
        "AUTH_POSTGRES_DSN": api.dsn,
        "AUTH_KEY_DIR": str(api.auth.settings.key_dir),
    }
    for address, expected in (("ada@example.test", 0), ("nobody@example.test", 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parley_auth.admin",
            "grant-admin",
            address,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == expected, output.decode()
    token = (await login(api, "ada@example.test")).json()["access_token"]
    assert api.auth.keys.verify(token).role == "admin"
    changed = [
        json.loads(e["data"]) for e in await api.events() if e["event_type"] == "RoleChanged"
    ]
    assert changed[-1]["role"] == "admin" and changed[-1]["previous_role"] == "user"


async def test_the_oldest_session_ends_beyond_the_limit(api: Api) -> None:
    from parley_auth.domain import MAX_SESSIONS

    await register_and_verify(api, "ada@example.test")
    sessions = [(await login(api, "ada@example.test")).json() for _ in range(MAX_SESSIONS + 1)]
    oldest, newest = sessions[0], sessions[-1]
    problem(
        await api.client.post("/v1/auth/refresh", json={"refresh_token": oldest["refresh_token"]}),
        401,
    )
    fine = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]}
    )
    assert fine.status_code == 200, fine.text
    me = (await api.client.get("/v1/auth/me", headers=bearer(newest["access_token"]))).json()
    assert len(me["sessions"]) == MAX_SESSIONS
    revoked = [
        json.loads(e["data"]) for e in await api.events() if e["event_type"] == "SessionRevoked"
    ]
    assert [(r["session_id"], r["reason"]) for r in revoked] == [
        (oldest["session_id"], "session_limit")
    ]


async def test_concurrent_registrations_of_one_address_create_one_account(api: Api) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(
            api.client.post(
                "/v1/auth/register",
                json={"email": "ada@example.test", "password": f"{PASSWORD}-{i}", "name": "A"},
            )
            for i in range(6)
        )
    )
    assert {r.status_code for r in responses} == {202}
    await api.settle()
    assert await api.event_types() == ["UserRegistered"]
    assert len({r.json()["user_id"] for r in responses}) == 6  # decoys look like real ids
    # and carry their registration token like the real one (the saga shadows decoy ids)
    for r in responses:
        body = r.json()
        assert body["registration_token"] == registration_token(REGISTRATION_SECRET, body["id"])


async def test_data_keys_internal_endpoint_and_forgetting_closes_the_account(api: Api) -> None:
    """The key owner: personal fields of auth events are sealed; the key endpoint needs the
    internal token; forgetting destroys the key (410 from then on) and closes the account."""
    from parley_privacy.client import KeyClient

    client, internal = api.client, api.internal
    user_id = await register_and_verify(api, "forget.me@example.test", name="Forget Me")
    tokens = (await login(api, "forget.me@example.test")).json()
    stored = " ".join(e["data"] for e in await api.events())
    assert "forget.me@example.test" not in stored and "Forget Me" not in stored
    path = f"/internal/v1/keys/{user_id}"
    assert (await internal.get(path)).status_code == 401
    assert (await internal.get(path, headers=bearer("wrong"))).status_code == 401
    inside = bearer(INTERNAL_TOKEN)
    key = await internal.get(path, headers=inside)
    assert key.status_code == 200 and key.headers["cache-control"] == "no-store"
    assert (await internal.get("/internal/v1/keys/nobody", headers=inside)).status_code == 404
    assert (await internal.post("/internal/v1/keys/somebody", headers=inside)).status_code == 200
    # a subject that names no account (accounts are uuids) only loses its key, twice alike
    somebody = "/internal/v1/keys/somebody"
    for _ in range(2):
        assert (await internal.delete(somebody, headers=inside)).status_code == 204
    assert (await internal.get(somebody, headers=inside)).status_code == 410

    keys = KeyClient("http://auth", INTERNAL_TOKEN, transport=internal._transport)
    registered = next(e for e in await api.events() if e["event_type"] == "UserRegistered")
    plain = await FieldCipher(keys).decrypt("UserRegistered", json.loads(registered["data"]))
    assert (plain["email"], plain["name"]) == ("forget.me@example.test", "Forget Me")

    assert (await internal.delete(path)).status_code == 401
    assert (await internal.delete(path, headers=inside)).status_code == 204
    assert (await internal.delete(path, headers=inside)).status_code == 204  # idempotent
    assert (await internal.get(path, headers=inside)).status_code == 410
    assert (await internal.post(path, headers=inside)).status_code == 410
    types = await api.event_types()
    assert types.count("AccountClosed") == 1 and "SessionRevoked" in types
    problem(await login(api, "forget.me@example.test"), 401)
    problem(await client.get("/v1/auth/me", headers=bearer(tokens["access_token"])), 401)
    keys.evict(user_id)
    redacted = await FieldCipher(keys).decrypt("UserRegistered", json.loads(registered["data"]))
    assert (redacted["email"], redacted["name"]) == ("", "Forgotten user")
    conn = await asyncpg.connect(api.dsn)
    try:
        assert not await conn.fetch("SELECT 1 FROM snapshots WHERE stream_id = $1", user_id)
        assert not await conn.fetch(
            "SELECT 1 FROM email_claims WHERE account_id = $1::uuid", user_id
        )
    finally:
        await conn.close()
    await keys.close()


def status_record(
    user_id: str, status: str, version: int
) -> tuple[list[tuple[str, bytes]], bytes, bytes]:
    """A users.events UserStatusChanged record as the users service's relay publishes it."""
    data = json.dumps({"user_id": user_id, "status": status}).encode()
    envelope = Envelope(
        id=f"evt-{user_id}-{version}",
        source="parley/users",
        type="parley.users.UserStatusChanged.v1",
        subject=user_id,
        time=datetime.now(UTC),
        data=data,
        aggregate_version=version,
        schema_version=1,
    )
    return kafka_headers(header_map(envelope)), data, user_id.encode()


async def test_a_deactivated_account_cannot_log_in_or_refresh_until_reactivated(
    api: Api,
) -> None:
    """users.events UserStatusChanged `deactivated`: every session ends (SessionRevoked,
    reason account_deactivated), the right password gets 403 account-disabled (a wrong one
    the 401 of every failed login), refresh tokens are dead; `active` restores login. Each
    status change is applied once by its stream version."""
    user_id = await register_and_verify(api, "ada@example.test")
    first = (await login(api, "ada@example.test")).json()
    second = (await login(api, "ada@example.test")).json()

    await statuses.apply(api.auth, *status_record(user_id, "deactivated", 4))

    refused = problem(await login(api, "ada@example.test"), 403)
    assert refused["type"] == "/problems/account-disabled"
    wrong = problem(await login(api, "ada@example.test", "Wrong-password-9"), 401)
    assert wrong["type"] == "/problems/unauthorized"
    for pair in (first, second):
        refresh = {"refresh_token": pair["refresh_token"]}
        problem(await api.client.post("/v1/auth/refresh", json=refresh), 401)
        problem(await api.client.get("/v1/auth/me", headers=bearer(pair["access_token"])), 401)
    events = await api.events()
    revoked = [json.loads(e["data"]) for e in events if e["event_type"] == "SessionRevoked"]
    assert sorted((r["session_id"], r["reason"]) for r in revoked) == sorted(
        (pair["session_id"], "account_deactivated") for pair in (first, second)
    )
    assert all(r["expires_at"] for r in revoked)  # the revocation lists know how long to keep it
    assert [e["event_type"] for e in events][-1] == "AccountDeactivated"

    count = len(events)
    await statuses.apply(api.auth, *status_record(user_id, "deactivated", 4))  # redelivered
    assert len(await api.events()) == count

    await statuses.apply(api.auth, *status_record(user_id, "active", 5))
    back = await login(api, "ada@example.test")
    assert back.status_code == 200, back.text
    # a replay of the old deactivation neither disables nor ends the new session
    await statuses.apply(api.auth, *status_record(user_id, "deactivated", 4))
    access = back.json()["access_token"]
    assert (await api.client.get("/v1/auth/me", headers=bearer(access))).status_code == 200
    assert (await login(api, "ada@example.test")).status_code == 200


async def test_the_status_consumer_skips_what_it_cannot_apply(api: Api) -> None:
    """A profile auth has no account for (made by an admin), an unknown status, a record
    without a stream version or that is no CloudEvent: logged and skipped, nothing appended."""
    await statuses.apply(api.auth, *status_record(str(uuid.uuid4()), "deactivated", 2))
    headers, _, key = status_record(str(uuid.uuid4()), "suspended", 2)
    await statuses.apply(api.auth, headers, b'{"user_id": "x", "status": "suspended"}', key)
    await statuses.apply(api.auth, [("ce_type", b"nonsense")], b"{}", b"k")
    await statuses.apply(api.auth, *status_record(str(uuid.uuid4()), "deactivated", 0))
    assert await api.events() == []


async def test_auth_time_is_the_login_and_a_refresh_keeps_it(api: Api) -> None:
    """Access tokens carry `auth_time` (when the password was given); a refresh issues a new
    token with the session's login time, so refreshing never makes a session "fresh"."""
    await register_and_verify(api, "ada@example.test")
    pair = (await login(api, "ada@example.test")).json()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["auth_time"] == claims["iat"]
    # the login happened ten minutes ago, as far as the session knows
    conn = await asyncpg.connect(api.dsn)
    try:
        await conn.execute(
            "UPDATE sessions SET auth_time = auth_time - interval '10 minutes'"
            " WHERE session_id = $1",
            pair["session_id"],
        )
    finally:
        await conn.close()
    body = {"refresh_token": pair["refresh_token"]}
    rotated = await api.client.post("/v1/auth/refresh", json=body)
    assert rotated.status_code == 200, rotated.text
    again = jwt.decode(rotated.json()["access_token"], options={"verify_signature": False})
    assert again["auth_time"] == claims["auth_time"] - 600
    assert again["iat"] >= claims["iat"]
    introspected = await api.client.post(
        "/v1/auth/introspect", json={"token": rotated.json()["access_token"]}, headers=INTERNAL
    )
    assert introspected.json()["auth_time"] == again["auth_time"]


async def test_unverified_registrations_expire_and_free_the_address(api: Api) -> None:
    """Past `registration_ttl_s` without a verified address, the registration is cancelled
    through the ordinary command (RegistrationCancelled, reason verification_expired) and the
    address is free for its owner; verified accounts are left alone."""
    stale = await api.client.post(
        "/v1/auth/register", json={"email": "eve@example.test", "password": PASSWORD, "name": "E"}
    )
    stale_id = stale.json()["user_id"]
    verified_id = await register_and_verify(api, "ada@example.test")
    fresh = await api.client.post(
        "/v1/auth/register", json={"email": "new@example.test", "password": PASSWORD, "name": "N"}
    )
    conn = await asyncpg.connect(api.dsn)
    try:
        await conn.execute(
            "UPDATE email_claims SET claimed_at = claimed_at - interval '25 hours'"
            " WHERE account_id = ANY($1::uuid[])",
            [stale_id, verified_id],
        )
    finally:
        await conn.close()

    assert await expiry.expire_unverified(api.auth) == 1
    assert await expiry.expire_unverified(api.auth) == 0  # once
    events = await api.events()
    cancelled = [e for e in events if e["event_type"] == "RegistrationCancelled"]
    assert [(e["stream_id"], json.loads(e["data"])["reason"]) for e in cancelled] == [
        (stale_id, "verification_expired")
    ]
    assert (await login(api, "ada@example.test")).status_code == 200
    assert fresh.json()["user_id"] not in {e["stream_id"] for e in cancelled}
    # the address is free: its owner registers for real (a new account, not a decoy)
    again = await api.client.post(
        "/v1/auth/register", json={"email": "eve@example.test", "password": PASSWORD, "name": "E"}
    )
    assert (await api.events())[-1]["stream_id"] == again.json()["user_id"] != stale_id
