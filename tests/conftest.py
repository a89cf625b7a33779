"""The root conftest: registers the fixtures of tests/fixtures/ once for the whole suite.

Test modules never import fixtures; they name them as arguments. Plain helpers (builders,
constants, wait_for) are imported from tests.fixtures.<module>, never from a test module or
a conftest. What lives where: see tests/fixtures/__init__.py.
"""
from tests.fixtures import faketime_sleep

faketime_sleep.install()  # before anything sleeps: see tests/fixtures/faketime_sleep.py

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.migrations",
    "tests.fixtures.accounts",
    "tests.fixtures.bans",
    "tests.fixtures.worker",  # before smtp, which imports it: a plugin imported first is not assert-rewritten
    "tests.fixtures.smtp",
    "tests.fixtures.ftp",
    "tests.fixtures.sftp",
    "tests.fixtures.api",
    "tests.fixtures.processes",
    "tests.fixtures.dnsserver",
    "tests.fixtures.dovecot",
]
