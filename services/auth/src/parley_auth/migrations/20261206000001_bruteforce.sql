-- Brute force and enumeration (issue 19, item 4).

-- migrate:up

-- Counters of any length of window (wrong codes per address, per client address, overall and
-- per day, besides the failed logins): each row keeps its own window, so the purge deletes
-- a daily counter only once its day is over.
ALTER TABLE login_throttle ADD COLUMN window_s integer NOT NULL DEFAULT 900;

-- Growing login delays per address (known or not): after `failures` wrong passwords the next
-- attempt is admitted at `next_at` (exponential, capped); a success deletes the row. No
-- lock: the right password after the delay always works.
CREATE TABLE login_delays (
    key        text        PRIMARY KEY,
    failures   integer     NOT NULL,
    next_at    timestamptz NOT NULL
);

-- When the address of the claim was proved (the verification code, a password reset, an
-- email change). Claims never proved expire (an unverified registration frees its address).
ALTER TABLE email_claims ADD COLUMN verified_at timestamptz;
UPDATE email_claims c SET verified_at = e.recorded_at
  FROM events e
 WHERE e.stream_id = c.account_id::text AND e.event_type IN ('EmailVerified', 'UserEmailChanged');
CREATE INDEX email_claims_unverified ON email_claims (claimed_at) WHERE verified_at IS NULL;

-- migrate:down
DROP INDEX email_claims_unverified;
ALTER TABLE email_claims DROP COLUMN verified_at;
DROP TABLE login_delays;
ALTER TABLE login_throttle DROP COLUMN window_s;
