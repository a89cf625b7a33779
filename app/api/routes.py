"""HTTP API (SPEC section 5); filled in by the API issue."""
from . import bp  # noqa: F401
