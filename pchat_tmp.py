import time, sys, collections
import parley_readmodel.runtime as rt
import parley_readmodel.apply as ap
import parley_readmodel.progress as pg
from aiokafka import AIOKafkaConsumer
stats = collections.defaultdict(list)
def wrap(mod, name, label=None):
    orig = getattr(mod, name)
    async def w(*a, **k):
        t = time.perf_counter()
        try: return await orig(*a, **k)
        finally: stats[label or name].append((time.perf_counter() - t) * 1000)
    setattr(mod, name, w)
for n in ("prepare", "apply_prepared", "read_alias", "record_progress", "join_generations", "park"): wrap(rt, n)
for n in ("insert_new", "read_stored_by_id", "write"): wrap(ap, n)
og, oc = AIOKafkaConsumer.getmany, AIOKafkaConsumer.commit
async def gm(self, *a, **k):
    t = time.perf_counter(); r = await og(self, *a, **k)
    if r: stats["getmany(nonempty)"].append((time.perf_counter()-t)*1000); stats["batch size"].append(sum(map(len, r.values())))
    return r
async def cm(self, *a, **k):
    t = time.perf_counter(); r = await oc(self, *a, **k); stats["commit"].append((time.perf_counter()-t)*1000); return r
AIOKafkaConsumer.getmany, AIOKafkaConsumer.commit = gm, cm
import atexit, signal
def dump():
    with open("/tmp/w/pchat_stats.txt", "w") as f:
        for k, v in stats.items():
            v = sorted(v); f.write(f"{k:22s} n={len(v):5d} p50={v[len(v)//2]:8.1f} p90={v[int(len(v)*.9)]:8.1f} p99={v[int(len(v)*.99)]:8.1f} sum={sum(v):9.0f}\n")
atexit.register(dump)
from parley_readmodel.service import main
from parley_projector_chat.config import Settings
from parley_projector_chat.views import chat_projection
main(Settings(), chat_projection)
