"""Stored documents (`documents`) and request/response schemas (`schemas`) are kept apart."""
