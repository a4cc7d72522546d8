import asyncio, json, httpx
from bench import saga
async def main():
    async with httpx.AsyncClient(base_url=saga.gateway(), timeout=60, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)) as c:
        print(json.dumps(await saga.through_auth_repository(c)))
asyncio.run(main())
