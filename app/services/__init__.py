"""Business logic that routers and the worker call; no HTTP types in here."""
