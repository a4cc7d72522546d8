"""The per-person send limit, shared by every replica of chat-api: at most `limit` messages
per fixed window of `window_s` seconds, counted in PostgreSQL (one upsert per send on the
sender's own row; the window is taken from the database's clock, so replicas' clocks do not
matter).

Hand-written rather than a library's: the rate-limit libraries on PyPI (limits, slowapi)
keep their counters in memory, Redis or Memcached, and this cluster has none of those shared
between replicas; the whole algorithm is the one statement below. A fixed window lets a
burst of up to 2 x limit straddle a window boundary: enough to stop a flood, which is its job.
"""

from __future__ import annotations

import asyncpg

TAKE = """
INSERT INTO send_limits AS l (user_id, window_start, sent)
VALUES ($1, date_bin(make_interval(secs => $2), now(), TIMESTAMPTZ 'epoch'), 1)
ON CONFLICT (user_id) DO UPDATE SET
    sent = CASE WHEN l.window_start = EXCLUDED.window_start THEN l.sent + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start
RETURNING sent, EXTRACT(EPOCH FROM (window_start + make_interval(secs => $2) - now()))::float8
"""


class SendLimiter:
    def __init__(self, pool: asyncpg.Pool, limit: int, window_s: float) -> None:
        self.pool = pool
        self.limit = limit
        self.window_s = window_s

    async def take(self, user_id: str) -> float | None:
        """Count one send; None when it is within the limit, else the seconds until the
        window ends (the Retry-After)."""
        row = await self.pool.fetchrow(TAKE, user_id, self.window_s)
        assert row is not None
        sent, remaining = int(row[0]), float(row[1])
        if sent <= self.limit:
            return None
        return max(remaining, 0.001)
