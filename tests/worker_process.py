"""Run the real arq worker in its own process, on an in-memory catalog that survives a SIGKILL.

There is no MongoDB server in the test environment, and an in-memory catalog dies with its
process. This harness loads the catalog from a JSON snapshot and writes a new snapshot every
SNAPSHOT_INTERVAL_S, so a second process started after a SIGKILL reads what a real database would
have kept (up to one interval old). Usage: python -m tests.worker_process SNAPSHOT SETTINGS_JSON [--burst]
"""

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bson import json_util

from app.config import Settings
from app.database import init_database
from app.memory_db import create_memory_database
from app.models.documents import DOCUMENT_MODELS
from app.workers.settings import create_worker

SNAPSHOT_INTERVAL_S = 0.05


async def dump(database: Any, path: Path) -> None:
    data = {}
    for model in DOCUMENT_MODELS:
        name = model.get_collection_name()
        data[name] = await database[name].find({}).to_list(None)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json_util.dumps(data))
    temporary.replace(path)


async def load(database: Any, path: Path) -> None:
    data = json_util.loads(path.read_text())
    for name, documents in data.items():
        if documents:
            await database[name].insert_many(documents)


async def main(snapshot: Path, settings: Settings, burst: bool) -> None:
    database = create_memory_database("worker")
    await init_database(database)
    await load(database, snapshot)

    async def keep_dumping() -> None:
        while True:
            await dump(database, snapshot)
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)

    dumper = asyncio.create_task(keep_dumping())
    worker = create_worker(settings, ctx={"database_ready": True}, burst=burst, poll_delay=0.05)
    try:
        await worker.async_run()
    finally:
        dumper.cancel()
        await worker.close()
        await dump(database, snapshot)


if __name__ == "__main__":
    snapshot_path = Path(sys.argv[1])
    overrides = json.loads(sys.argv[2])
    asyncio.run(main(snapshot_path, Settings(**overrides), "--burst" in sys.argv[3:]))
