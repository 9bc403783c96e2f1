"""In-memory MongoDB for the local run and the test suite.

mongomock-motor gives mongomock an async face, but Beanie 2.2 calls two methods the way PyMongo's
`AsyncMongoClient` defines them, not the way mongomock-motor does:
`list_collection_names(authorizedCollections=..., nameOnly=...)`, whose extra arguments mongomock
rejects, and `await collection.aggregate(...)`, where mongomock-motor returns the cursor without a
coroutine. The two wrappers below bridge exactly those calls and pass everything else through.
"""

from typing import Any

from mongomock_motor import AsyncMongoMockClient

# Arguments that only a real server understands; mongomock raises TypeError on them.
_SERVER_ONLY_LIST_ARGUMENTS = ("authorizedCollections", "nameOnly")


class _Collection:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aggregate(self, pipeline: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        return self._inner.aggregate(pipeline, *args, **kwargs)


class _Database:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __getitem__(self, name: str) -> _Collection:
        return _Collection(self._inner[name])

    def get_collection(self, name: str, **kwargs: Any) -> _Collection:
        return _Collection(self._inner.get_collection(name, **kwargs))

    async def list_collection_names(self, *args: Any, **kwargs: Any) -> list[str]:
        for argument in _SERVER_ONLY_LIST_ARGUMENTS:
            kwargs.pop(argument, None)
        return await self._inner.list_collection_names(*args, **kwargs)


def create_memory_database(name: str) -> Any:
    """Return a fresh, empty in-memory database that Beanie can be initialised on."""
    return _Database(AsyncMongoMockClient()[name])
