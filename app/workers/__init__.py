"""The arq worker: the download job and the worker's settings."""
