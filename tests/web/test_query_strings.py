"""No query string makes a page or an API read fail: a walk of app.url_map with hostile values.

Every GET rule (pages and the API) is asked with its path filled by real ids of the account's
objects and by hostile ids, times every query parameter the code reads (found in the source, so
a new parameter is covered without editing this file), times hostile values: huge, negative,
non-numeric, far dates, bytes that are not UTF-8, empty, very long. As 管理者 and as 閲覧者, the
API with the account's token. Nothing may answer 5xx. Then what the clamped values show.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from werkzeug.datastructures import ImmutableMultiDict
from wtforms.fields.core import UnboundField

from app.extensions import db
from app.models import Import
from app.services import ingest
from tests.fixtures.accounts import PASSWORD
from tests.fixtures.scoping import OBJECT_FACTORIES, build

APP_DIR = Path(__file__).resolve().parents[2] / "app"

# Each written as it goes on the wire (already percent-encoded where needed).
HOSTILE_VALUES = [
    "9223372036854775807", "9223372036854775808", "99999999999999999999", "9" * 400,
    "-1", "-9223372036854775809", "0", "00", "1e9", "0x10", "abc", "%EF%BC%91%EF%BC%92",  # "１２"
    "0001-01-01", "9999-12-31", "0000-00-00", "10000-01-01", "2018-02-30", "9999-12", "0001-01", "0000-12",
    "99991231", "999912", "00000000", "9999-13", "-2018-05", "%ff%fe", "%00", "%0d%0a", "", "%20", "x" * 3000, "%2F%2Fevil.example",
]
HOSTILE_IDS = [0, 2**31, 2**63, 10**30]
# Parameters the walk must find (guards the source scan itself).
KNOWN_PARAMETERS = {"month", "column", "page", "date_from", "date_to", "status", "channel", "filename",
                    "limit", "offset", "errors_limit", "errors_offset", "wait", "period", "next"}

_CALLS = re.compile(r"""(?:request\.args\.get|request\.args\.getlist|_int_arg|_flag)\(\s*["'](\w+)["']""")
_INDEX = re.compile(r"""request\.args\[\s*["'](\w+)["']\s*\]|["'](\w+)["']\s+in\s+request\.args""")
_FORMS = re.compile(r"""(\w+Form)\(\s*request\.args""")


def _form_fields(name: str) -> set[str]:
    """The field names of the form class `name` defined somewhere in app/ (read from the source)."""
    for path in APP_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == name:
                module = ".".join(path.relative_to(APP_DIR.parent).with_suffix("").parts)
                cls = getattr(__import__(module, fromlist=[name]), name)
                return {attr for attr in dir(cls) if isinstance(getattr(cls, attr), UnboundField)}
    raise AssertionError(f"form {name} read from request.args not found in app/")


def query_parameters() -> set[str]:
    """Every query parameter name the code reads: request.args, the API's parsers, forms fed request.args."""
    names: set[str] = set()
    for path in APP_DIR.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        names.update(_CALLS.findall(source))
        names.update(a or b for a, b in _INDEX.findall(source))
        for form in _FORMS.findall(source):
            names.update(_form_fields(form))
    return names


def get_rules(app):
    """Every GET rule but static files and the API's catch-all (its paths are any text)."""
    return [rule for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ()) and rule.endpoint not in ("static", "api.unknown")]


@pytest.fixture
def world(app, make_account):
    """An account with one object of each kind, a token, its admin's and a viewer's logged-in clients."""
    app.config["API_RATE_PER_MINUTE"] = 1_000_000
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a failing view answers 500, as on a server, and the walk goes on
    made = make_account("alpha", api_token=True)  # its member and column come from OBJECT_FACTORIES
    ids = {name: factory(made.account) for name, factory in OBJECT_FACTORIES.items()}
    clients = {}
    for role, email in (("admin", made.email), ("viewer", "viewer@alpha.example")):
        client = app.test_client()
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 302, (role, response.status_code)
        clients[role] = client
    return made, ids, clients


def _ask(client, url: str, headers) -> int:
    response = client.get(url, headers=headers)
    status = response.status_code
    response.close()
    return status


def test_the_scan_finds_every_known_parameter():
    found = query_parameters()
    assert KNOWN_PARAMETERS <= found, sorted(KNOWN_PARAMETERS - found)


# The names a view read from request.args since the last clear().
READ: set[str] = set()


class RecordingArgs(ImmutableMultiDict):
    """request.args that notes into READ which names a view reads (the request class's storage in a test)."""

    def get(self, key, *args, **kwargs):
        READ.add(key)
        return super().get(key, *args, **kwargs)

    def getlist(self, key, *args, **kwargs):
        READ.add(key)
        return super().getlist(key, *args, **kwargs)

    def __getitem__(self, key):
        READ.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        READ.add(key)
        return super().__contains__(key)


def parameters_read(app, client, headers, ids, parameters) -> dict[str, list[str]]:
    """For each GET rule's URL: the parameters its view reads, each asked alone with a plain value."""
    read = {}
    for rule in get_rules(app):
        url = build(app, rule, ids)
        read[url] = []
        for name in parameters:
            READ.clear()
            _ask(client, f"{url}?{name}=1", headers)
            if name in READ:
                read[url].append(name)
    return read


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_no_query_string_gives_a_server_error(app, world, role, monkeypatch):
    made, ids, clients = world
    client, headers = clients[role], made.headers
    parameters = sorted(query_parameters())
    monkeypatch.setattr(app.request_class, "parameter_storage_class", RecordingArgs)
    read = parameters_read(app, client, headers, ids, parameters)
    # Guards the recording: what these views are known to read (a 閲覧者 gets 403 before 手動取込 reads anything).
    assert {"month", "column"} <= set(read["/"]), read["/"]
    assert {"page", "status", "channel", "filename", "date_from", "date_to"} <= set(read["/imports"])
    assert {"limit", "offset", "page", "status"} <= set(read["/api/v1/imports"])
    assert "period" in read["/api/v1/results"]
    failures, asked = [], 0
    for url, names in read.items():
        for value in HOSTILE_VALUES:
            # Each parameter the view reads alone (a parser that stops at the first bad one hides
            # the next), then every parameter at once (those read together: date_from, date_to).
            queries = [f"{name}={value}" for name in names]
            queries.append("&".join(f"{name}={value}" for name in parameters))
            for query in queries:
                status = _ask(client, f"{url}?{query}", headers)
                asked += 1
                if status >= 500:
                    failures.append(f"GET {url}?{query[:120]} → {status}")
    for rule in get_rules(app):
        for hostile in HOSTILE_IDS if rule.arguments else ():
            bad_url = build(app, rule, {name: hostile for name in rule.arguments})
            for query in ("", "&".join(f"{name}={'9' * 30}" for name in parameters)):
                status = _ask(client, f"{bad_url}?{query}", headers)
                asked += 1
                if status >= 500:
                    failures.append(f"GET {bad_url}?{query[:120]} → {status}")
    assert not failures, "\n".join(failures[:40])
    assert asked > 800  # the walk really walked


def test_a_month_at_the_end_of_the_calendar_is_shown(client, world, login):
    made, _, _ = world
    login(made.email)
    html = client.get("/?month=9999-12").get_data(as_text=True)
    assert "9999年12月の実績" in html
    assert "month=9999-11" in html  # 前月; 翌月 stays on the last month a file name can name
    html = client.get("/?month=0001-01").get_data(as_text=True)
    assert "1年1月の実績" in html and "month=0001-02" in html


@pytest.mark.parametrize("query", ["?month=2018-13", "?month=%ff%fe", "?month=２０１８-０５"])
def test_a_month_that_is_none_shows_the_current_month_and_says_so(client, world, login, query):
    made, _, _ = world
    login(made.email)
    html = client.get("/" + query).get_data(as_text=True)
    assert "年月は 2018-05 のように指定してください。今月を表示しています。" in html


def test_a_page_past_the_end_shows_the_last_page(client, world, login):
    made, _, _ = world
    login(made.email)
    for n in range(51):
        ingest.record_refusal(made.id, channel="mail", filename=f"file{n:02d}.csv", sender=None,
                              status=Import.REFUSED, note="拒否")
    db.session.commit()
    for page in ("9223372036854775807", "99999999999999999999", "3"):
        html = client.get(f"/imports?page={page}").get_data(as_text=True)
        assert "2 / 2 ページ" in html and "file00.csv" in html, page
    for page in ("-5", "0", "abc", "%ff"):
        html = client.get(f"/imports?page={page}").get_data(as_text=True)
        assert "1 / 2 ページ" in html and "file50.csv" in html, page


def test_far_dates_filter_as_open_ends(client, world, login):
    made, ids, _ = world
    login(made.email)
    html = client.get("/imports?date_from=0001-01-01&date_to=9999-12-31").get_data(as_text=True)
    assert f"/imports/{ids['import_id']}" in html  # the one import is inside the widest range
    html = client.get("/imports?date_from=9999-12-31").get_data(as_text=True)
    assert f"/imports/{ids['import_id']}" not in html and "条件に合う取込はありません" in html


@pytest.mark.parametrize("period, first, last", [("99991231", "9999-12-31", "9999-12-31"),
                                                 ("999912", "9999-12-01", "9999-12-31"),
                                                 ("00010101", "0001-01-01", "0001-01-01")])
def test_the_api_reads_periods_at_the_ends_of_the_calendar(client, world, period, first, last):
    made, _, _ = world
    response = client.get(f"/api/v1/results?period={period}", headers=made.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["from"], body["to"]) == (first, last)
