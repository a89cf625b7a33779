"""`flask …` commands (SPEC section 7). Each command calls a service and maps RenkeiError to exit 1."""
from flask import Flask

from . import accounts, imports, integration, members


def register_cli(app: Flask) -> None:
    for module in (accounts, members, imports, integration):
        module.register(app)
