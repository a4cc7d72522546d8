import asyncio, time, json, sys, uuid
from aiokafka import AIOKafkaConsumer
from parley_messaging.envelope import decode
async def main(seconds):
    c = AIOKafkaConsumer("chat.events", bootstrap_servers="127.0.0.1:9092", group_id=f"probe-{uuid.uuid4().hex[:6]}", auto_offset_reset="latest")
    await c.start()
    relay, kafka = [], []
    end = time.time() + seconds
    try:
        while time.time() < end:
            batch = await c.getmany(timeout_ms=200)
            now = time.time()
            for tp, recs in batch.items():
                for r in recs:
                    env = decode(r.headers, r.value)
                    relay.append((r.timestamp/1000 - env.time.timestamp())*1000)
                    kafka.append((now - r.timestamp/1000)*1000)
    finally:
        await c.stop()
    def pct(xs, p): xs = sorted(xs); return round(xs[min(len(xs)-1, int(len(xs)*p/100))], 1) if xs else None
    print("n", len(relay), "append->kafka p50/p99", pct(relay,50), pct(relay,99), "kafka->consumer p50/p99", pct(kafka,50), pct(kafka,99))
asyncio.run(main(float(sys.argv[1])))
