import asyncio, time, sys, uuid
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from parley_messaging.envelope import decode
from parley_readmodel.progress import progress_id, stream_key
from parley_readmodel.aliases import active_generation
async def main(seconds):
    c = AIOKafkaConsumer("chat.events", bootstrap_servers="127.0.0.1:9092", group_id=f"probe-{uuid.uuid4().hex[:6]}", auto_offset_reset="latest")
    await c.start()
    db = AsyncMongoClient("mongodb://127.0.0.1:27017/")["parley"]
    gen = await active_generation(db, "projector-chat")
    evtime, seen = {}, {}
    conv = None
    end = time.time() + seconds
    async def consume():
        nonlocal conv
        while time.time() < end:
            batch = await c.getmany(timeout_ms=100)
            for tp, recs in batch.items():
                for r in recs:
                    env = decode(r.headers, r.value)
                    if env.event_name == "MessageSent":
                        conv = conv or env.subject
                        if env.subject == conv:
                            evtime[env.aggregate_version] = env.time.timestamp()
    async def poll():
        last = 0
        while time.time() < end:
            if conv:
                d = await db["_progress"].find_one({"_id": progress_id("projector-chat", gen, stream_key("chat", conv))})
                now = time.time()
                v = int(d["version"]) if d else 0
                for x in range(last + 1, v + 1): seen[x] = now
                last = max(last, v)
            await asyncio.sleep(0.005)
    await asyncio.gather(consume(), poll())
    await c.stop()
    lat = sorted((seen[v] - t) * 1000 for v, t in evtime.items() if v in seen)
    pct = lambda p: round(lat[min(len(lat)-1, int(len(lat)*p/100))], 1)
    print("n", len(lat), "append->applied p50", pct(50), "p90", pct(90), "p99", pct(99), "max", round(lat[-1],1))
asyncio.run(main(float(sys.argv[1])))
