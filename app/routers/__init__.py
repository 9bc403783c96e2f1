"""HTTP routes under /ux/nccm/os-image/; each handler validates, loads, checks and delegates."""

API_PREFIX = "/ux/nccm/os-image"
