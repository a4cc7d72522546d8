"""Settings from the environment (pydantic-settings, prefix `AUTH_`): the kit's shared fields
(parley_commandkit.BaseCommandSettings: auth verifies the tokens it issues itself and owns
the data keys, so it takes none of the token-verifying or key-client settings) and its own."""

from __future__ import annotations

from pathlib import Path

from parley_commandkit import BaseCommandSettings
from parley_privacy.wrapping import MasterKeys
from pydantic_settings import SettingsConfigDict


class Settings(BaseCommandSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/auth"
    port: int = 8102

    # -- tokens -----------------------------------------------------------------------------
    # Ed25519 private key (PKCS#8 PEM). Unset: a key generated once under key_dir (dev only).
    signing_key_pem: str | None = None
    # the key before the last rotation (private or public PEM): still published in the JWKS
    # and accepted, so tokens signed before the rotation stay valid until they expire
    previous_key_pem: str | None = None
    key_dir: Path = Path(".local/auth")
    issuer: str = "parley-auth"
    audience: str = "parley"
    access_ttl_s: int = 300
    refresh_ttl_s: int = 30 * 24 * 3600
    # secret for the keyed hash of one-time codes; unset: derived from the signing key
    code_secret: str | None = None

    # -- one-time codes and mail --------------------------------------------------------------
    code_ttl_s: int = 600
    code_max_attempts: int = 5  # per code, then it is burnt
    # wrong codes (and reset tokens) per login window: per address (known or not; at most
    # the attempts of one code, so a known address's sixth wrong code answers like an
    # unknown one's), per client address, and over all addresses (a flood from many sources)
    code_max_failures: int = 5
    code_max_failures_client: int = 100
    code_max_failures_global: int = 10000
    # wrong codes per address per day: the live codes are burnt and the owner is mailed
    code_daily_cap: int = 20
    # where the password-reset mail links to (the client's page; the token is in the fragment)
    reset_url: str = "http://127.0.0.1:8080/reset-password"
    notice_max: int = 3  # "someone used your address" mails per address per login window
    code_resend_interval_s: int = 60  # at most one new code per account and purpose per minute
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_s: float = 10.0
    mail_from: str = "Parley <no-reply@parley.invalid>"

    # -- passwords and throttling ---------------------------------------------------------------
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    hash_concurrency: int = 4  # argon2 runs in threads; bounds memory (19 MiB each) and CPU
    login_window_s: int = 900
    # growing delays per address (known or not) instead of a lock: `login_free_failures`
    # wrong passwords cost nothing, then each needs a wait of base * 2^n seconds (at most
    # max) before the next attempt; the right password after the wait always works
    login_free_failures: int = 3
    login_delay_base_s: float = 1.0
    login_delay_max_s: float = 60.0
    login_max_failures_address: int = 50  # per client address per window, then 429

    # -- unverified registrations ---------------------------------------------------------------
    # a registration whose address is not verified within this time is cancelled (the address
    # is free again); checked every `registration_sweep_s`
    registration_ttl_s: int = 24 * 3600
    registration_sweep_s: int = 600
    # the registration token `POST /v1/auth/register` returns, which `GET /v1/registrations/
    # {id}` requires (parley_http.registration; the saga's SAGA_REGISTRATION_SECRET is the
    # same); empty: no token is returned, so nobody can read a registration's status
    registration_secret: str = ""

    # -- service to service --------------------------------------------------------------------
    # the internal endpoints (verification codes for notifications-api, data keys of
    # crypto-shredding) are served on this port only, never on `port` (which the gateway
    # proxies); 0: not on a socket at all (tests call the internal app in process)
    internal_port: int = 8112
    # who may call them, with what scopes (parley_auth.callers): JSON
    # {name: {"secret_sha256": hex, "scopes": [...]}}, in the variable or in a file (a mounted
    # secret; the local cluster's, whose supervisord cannot quote JSON); unset: they refuse
    # every call
    internal_callers: str = ""
    internal_callers_file: str = ""  # a path; empty: none
    # key destruction per caller: a token bucket (429 beyond it), in memory per replica
    key_destroy_rate_per_s: float = 5.0
    key_destroy_burst: int = 20
    # (AUTH_INTERNAL_TOKEN, the shared token before per-caller credentials, is not read at all)
    # answer the registration saga's commands on auth.commands (off in tests without Kafka)
    saga_participant: bool = True
    # follow the users context's account status (users.events UserStatusChanged, consumer
    # group auth-user-status); off in tests without Kafka
    follow_user_status: bool = True
    kafka_bootstrap_servers: str = "127.0.0.1:9092"

    # -- data keys at rest (crypto-shredding, issue 19.5) ---------------------------------------
    # the master key that wraps every data key in the key table (base64 of 32 bytes, from a
    # secret store, never from the database); unset: keys are stored in the clear (tests only:
    # every deployment sets it) and a wrapped table cannot be read (KeyUnavailable)
    master_key: str = ""
    master_key_id: str = "m1"  # names it in each row (wrap_kid): a new id for a new key
    # rotation: the keys before the current one, `id:base64,...`: they unwrap old rows, which
    # the next start re-wraps under the current key
    previous_master_keys: str = ""

    # -- roles ------------------------------------------------------------------------------
    # comma-separated addresses that become admin at their next login (the first admin)
    bootstrap_admin_emails: str = ""

    def master_keys(self) -> MasterKeys | None:
        """The master keys (None without one); a malformed key refuses to start."""
        if not self.master_key:
            return None
        return MasterKeys.parse(self.master_key, self.master_key_id, self.previous_master_keys)

    def bootstrap_admins(self) -> frozenset[str]:
        return frozenset(
            e.strip().lower() for e in self.bootstrap_admin_emails.split(",") if e.strip()
        )
