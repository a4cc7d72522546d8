"""How long a consumer on the live path lets the broker hold a fetch (`fetch_max_wait_ms`).

aiokafka keeps one fetch request in flight per broker, and leaves a partition out of it while
that partition's last records are still buffered for the application. So once a consumer
has handed a partition's records to its handler, the next fetch of that partition waits for
the request already in flight for the other partitions, and the broker holds that request
for up to `fetch_max_wait_ms` when those partitions are quiet. With the default of 500 ms,
a projector that spends 20 ms on a batch made its next records wait up to half a second (on
the local single-broker cluster every partition has the same leader): that, not the writes,
was most of the chat projector's lag at 100 messages/s.

50 ms bounds that wait. It costs an idle consumer at most 20 empty fetches a second (on the
idle local cluster about 4% of the box, mostly Kafka's). Throughput-minded readers (rebuild,
re-drive, tests) and the revocation readers keep the default.
"""

LIVE_FETCH_MAX_WAIT_MS = 50
