"""The side-by-side anchor of the query benchmark: FastAPI's hello world, served the same way
as the query gateway (one uvicorn process)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello/{item_id}")
async def hello(item_id: str) -> dict[str, str]:
    return {"hello": item_id}
