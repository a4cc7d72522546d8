import asyncio, time, sys
from pymongo import AsyncMongoClient, DESCENDING
from parley_readmodel.aliases import active_generation, physical
async def main(seconds):
    db = AsyncMongoClient("mongodb://127.0.0.1:27017/")["parley"]
    gen = await active_generation(db, "projector-chat")
    col = db[physical("memberships", gen)]
    lat = []
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        await col.find({"user_id": "nobody", "removed": {"$ne": True}}).sort([("last_activity_at", DESCENDING), ("conversation_id", DESCENDING)]).limit(21).to_list(None)
        lat.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.05)
    lat.sort()
    print("list query n", len(lat), "p50", round(lat[len(lat)//2],1), "p90", round(lat[int(len(lat)*.9)],1), "p99", round(lat[int(len(lat)*.99)],1), "max", round(lat[-1],1))
asyncio.run(main(float(sys.argv[1])))
