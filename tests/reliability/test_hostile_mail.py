"""Hostile and malformed mails sent over a real socket to Renkei's running SMTP server.

One server (with the import worker and a sink relay) serves the whole module, so these tests
also show it keeps serving: after every case an ordinary good mail must still be accepted
and imported. Each case must get the right answer:
- 250 and a clear FAILED import with Japanese errors and an error report in the outbox, or
- 250 and a SUCCEEDED import when the mail is odd but its CSV is fine, or
- 5xx with a REFUSED record (From: problems), or
- 552 (over the size cap) with a REFUSED record naming the cap. Any line length is accepted
  below the cap (as Postfix does): a 100 KB header line is no refusal.
"""
from __future__ import annotations

import itertools
import re
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Import, OutboxMail
from app.services import files
from servers.mailparse import parse_head
from tests.fixtures.accounts import create_test_account
from tests.fixtures.corpus import (
    GOOD_CSV, b64_lines, csv_bytes, csv_part, disposition, mail_head, multipart, nested_mail, simple_mail,
    zip_bomb,
)
from tests.fixtures.database import app_config
from tests.fixtures.smtp_sink import RawSmtp, SmtpSink
from tests.fixtures.waiting import wait_for

SENDER = "sales@partner.example"
ERROR_TO = "errors@acme.example"
MAX_BYTES = 3 * 1024 * 1024  # small, so the over-size case stays fast
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
TIMEOUT = 20.0
_ids = itertools.count(1)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------
# One running server for the module


@pytest.fixture(scope="module")
def env(new_database, tmp_path_factory):
    """An enabled mail-mode account, the worker, a sink relay and the SMTP server on a free port."""
    from servers import smtp
    from servers.worker import Worker

    folder = tmp_path_factory.mktemp("hostile-mail")
    db_file = new_database(folder)
    relay = SmtpSink().start()
    app = create_app({**app_config(folder, db_file), "SMTP_PORT": 0, "HOST": "127.0.0.1",
                      "SMTP_MAX_BYTES": MAX_BYTES, "SMTP_TIMEOUT": 30, "SMTP_RELAY": relay.url})
    with app.app_context():
        made = create_test_account("acme", name="アクメ株式会社", members=[(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子")],
                                   columns=(("売上", "円"), ("粗利", "円"), ("件数", "件")), mode="mail",
                                   status="active", senders=[SENDER], error_to=[ERROR_TO])
        account_id, address = made.id, made.address
        db.session.remove()
    worker = Worker(app, poll_seconds=0.1)
    worker.start()
    server = smtp.start(app)
    try:
        yield SimpleNamespace(app=app, port=server.port, account_id=account_id, address=address, relay=relay)
    finally:
        server.stop()
        worker.stop()
        relay.stop()
        with app.app_context():
            db.engine.dispose()


def message_id() -> str:
    return f"<hostile-{next(_ids)}-{time.monotonic_ns()}@partner.example>"


def send(env, raw: bytes, envelope_from: str = SENDER) -> tuple[int, str]:
    """One SMTP transaction with smtplib; return the final reply (code, text) of DATA."""
    with smtplib.SMTP("127.0.0.1", env.port, timeout=TIMEOUT) as client:
        client.ehlo("client.partner.example")
        code, text = client.mail(envelope_from)
        assert code == 250, text
        code, text = client.rcpt(env.address)
        assert code == 250, text
        code, text = client.data(raw)
        return code, text.decode("utf-8", "replace")


def snapshot(imp: Import) -> SimpleNamespace:
    """A detached, plain copy of an import with its errors and report."""
    report = db.session.scalar(select(OutboxMail).where(OutboxMail.import_id == imp.id))
    return SimpleNamespace(
        id=imp.id, status=imp.status, filename=imp.filename, sender=imp.sender, note=imp.note or "",
        row_count=imp.row_count, has_content=files.exists(imp.id), channel=imp.channel,
        errors=[SimpleNamespace(line=e.line, column=e.column, value=e.value, message=e.message) for e in imp.errors],
        report=(report.kind, report.to_addrs, report.body) if report else None,
    )


def imports_after(env, last_id: int) -> list[SimpleNamespace]:
    with env.app.app_context():
        rows = db.session.scalars(select(Import).where(Import.account_id == env.account_id, Import.id > last_id)
                                  .order_by(Import.id))
        return [snapshot(imp) for imp in rows]


def last_import_id(env) -> int:
    with env.app.app_context():
        return db.session.scalar(select(func.max(Import.id))) or 0


def wait_finished(env, last_id: int, count: int) -> list[SimpleNamespace]:
    """The imports after `last_id` once `count` of them exist and all have ended (bounded)."""
    def finished():
        rows = imports_after(env, last_id)
        return rows if len(rows) >= count and all(r.status not in (Import.QUEUED, Import.RUNNING) for r in rows) else None

    return wait_for(finished, TIMEOUT, what=lambda: f"{count} finished import(s): {imports_after(env, last_id)}",
                    interval=0.05)


def assert_still_serving(env) -> None:
    """An ordinary good mail is still accepted and imported."""
    last = last_import_id(env)
    raw = simple_mail(SENDER.encode(), env.address, message_id(),
                      [csv_part(disposition(b"20180501.csv"), GOOD_CSV)])
    code, text = send(env, raw)
    assert code == 250, text
    [imp] = wait_finished(env, last, 1)
    assert (imp.filename, imp.status, imp.row_count) == ("20180501.csv", Import.SUCCEEDED, 2), imp


def assert_clear_failure(imp: SimpleNamespace, text: str | None) -> None:
    assert imp.status == Import.FAILED, imp
    assert imp.errors, "a failed import lists its errors"
    for error in imp.errors:
        assert error.message.strip() and JAPANESE.search(error.message), error.message
        assert "システムエラー" not in error.message, "the import crashed"
    if text:
        assert any(text in e.message for e in imp.errors), [e.message for e in imp.errors]
    assert imp.report is not None, "no error report in the outbox"
    kind, to_addrs, body = imp.report
    assert kind == "error" and to_addrs == [ERROR_TO] and imp.errors[0].message in body


# ---------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class MailCase:
    """A hostile mail and what must come of it (see the module docstring)."""

    id: str
    build: Callable[[str, str], bytes]  # (to, message id) -> the raw message
    reply: int
    outcome: str  # imported | failed | refused
    filename: str | None = None  # the stored name of the (one) import
    text: str | None = None  # in an error message (failed) or in the refusal note (refused)
    sender: str = SENDER  # the sender the record names
    envelope_from: str = SENDER


S = SENDER.encode()


def _with_csv(name: bytes = b"20180516.csv", data: bytes = GOOD_CSV, **kwargs) -> Callable[[str, str], bytes]:
    """A normal mail from the registered sender with one attachment."""
    return lambda to, mid: simple_mail(S, to, mid, [csv_part(disposition(name), data)], **kwargs)


def _from(header: bytes | None, *, twice: bool = False) -> Callable[[str, str], bytes]:
    """A mail with a good CSV and the given From: header (None: none at all)."""
    def build(to: str, mid: str) -> bytes:
        extra = b"From: " + S + b"\r\n" if twice else b""
        return simple_mail(header, to, mid, [csv_part(disposition(b"20180516.csv"), GOOD_CSV)], extra=extra)
    return build


def _no_boundary(to: str, mid: str) -> bytes:
    return (mail_head(S, to, mid) + b"Content-Type: multipart/mixed\r\n\r\n"
            + multipart([csv_part(disposition(b"20180516.csv"), GOOD_CSV)]))


def _empty_multipart(to: str, mid: str) -> bytes:
    return mail_head(S, to, mid) + b'Content-Type: multipart/mixed; boundary="e"\r\n\r\n--e--\r\n'


def _forwarded(to: str, mid: str) -> bytes:
    inner = (mail_head(b"someone@elsewhere.example", to, "<inner@elsewhere.example>")
             + b'Content-Type: multipart/mixed; boundary="in"\r\n\r\n'
             + multipart([csv_part(disposition(b"20180516.csv"), GOOD_CSV)], b"in"))
    part = b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + inner
    return simple_mail(S, to, mid, [part])


def _raw_part(headers: bytes, body: bytes) -> Callable[[str, str], bytes]:
    return lambda to, mid: simple_mail(S, to, mid, [headers + b"\r\n\r\n" + body])


CP932_NAME = "売上_20180516.csv".encode("cp932")
UNKNOWN_CHARSET_TEXT = b"Content-Type: text/plain; charset=x-unknown\r\n\r\n\x93\xfa\x96{\r\n"
NAME_MESSAGE = "ファイル名は"
NO_CSV = "添付されていませんでした"

MAIL_CASES = [
    # Without its closing boundary the last part may be cut off: reported, never imported.
    MailCase("missing-closing-boundary", _with_csv(close=False), 250, "failed", "20180516.csv", "途中で切れている"),
    MailCase("boundary-never-declared", _no_boundary, 250, "failed", "(CSV添付なし)", NO_CSV),
    MailCase("nested-multipart-50-deep",
             lambda to, mid: nested_mail(S, to, mid, 50, csv_part(disposition(b"20180516.csv"), GOOD_CSV)),
             250, "imported", "20180516.csv"),
    MailCase("header-line-100kb", _with_csv(extra=b"X-Long: " + b"a" * 100_000 + b"\r\n"), 250, "imported",
             "20180516.csv"),
    MailCase("header-100kb-folded", _with_csv(extra=b"X-Long: " + b"\r\n ".join([b"a" * 70] * 1500) + b"\r\n"),
             250, "imported", "20180516.csv"),
    MailCase("ten-thousand-headers", _with_csv(extra=b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))),
             250, "imported", "20180516.csv"),
    MailCase("unknown-charsets",
             lambda to, mid: mail_head(S, to, mid, extra=b"X-Note: =?x-unknown?B?////?=\r\n")
             + b'Content-Type: multipart/mixed; boundary="b0und"\r\n\r\n'
             + multipart([UNKNOWN_CHARSET_TEXT, csv_part(disposition(b"20180516.csv"), GOOD_CSV,
                                                         content_type=b"text/csv; charset=x-unknown")]),
             250, "imported", "20180516.csv"),
    MailCase("utf8-declared-cp932-filename-rfc2231",
             _raw_part(b"Content-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n"
                       b"Content-Disposition: attachment; filename*=UTF-8''" + quote(CP932_NAME).encode(),
                       b64_lines(GOOD_CSV)),
             250, "failed", None, NAME_MESSAGE),
    MailCase("utf8-declared-cp932-filename-raw",
             _raw_part(b"Content-Type: text/csv; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
                       b'Content-Disposition: attachment; filename="' + CP932_NAME + b'"', b64_lines(GOOD_CSV)),
             250, "failed", None, NAME_MESSAGE),
    MailCase("base64-garbage",
             _raw_part(b"Content-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n"
                       + disposition(b"20180516.csv"),
                       b"!!!!####$$$$%%%%not*base64*at*all====\r\nQUJD=RE\r\n"),
             250, "failed", "20180516.csv"),
    MailCase("path-traversal-unix", _with_csv(b"../../etc/passwd.csv"), 250, "failed", "passwd.csv", NAME_MESSAGE),
    # In a quoted parameter a backslash escapes the next character (RFC 2045 quoted-pair), so a
    # Windows path is sent with doubled backslashes, or percent-encoded in RFC 2231 form.
    MailCase("path-traversal-windows", _with_csv(b"C:\\\\evil\\\\20180516.csv"), 250, "imported", "20180516.csv"),
    MailCase("path-traversal-windows-rfc2231",
             _raw_part(b"Content-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n"
                       b"Content-Disposition: attachment; filename*=UTF-8''C%3A%5Cevil%5C..%5C20180516.csv",
                       b64_lines(GOOD_CSV)),
             250, "imported", "20180516.csv"),
    # Single backslashes are quoted-pairs and vanish: a wrong name, reported as such.
    MailCase("path-traversal-windows-unescaped", _with_csv(b"C:\\evil\\20180516.csv"), 250, "failed",
             "C:evil20180516.csv", NAME_MESSAGE),
    MailCase("nul-and-control-chars-in-filename", _with_csv(b"2018\x0005\x07\x1b16.csv"), 250, "imported",
             "20180516.csv"),
    MailCase("zip-bomb-named-csv", _with_csv(data=zip_bomb()), 250, "failed", "20180516.csv", "ZIP形式"),
    MailCase("nul-bytes-in-body",
             lambda to, mid: simple_mail(S, to, mid, [b"Content-Type: text/plain\r\n\r\nNUL\x00\x00here\r\n",
                                                      csv_part(disposition(b"20180516.csv"), GOOD_CSV)]),
             250, "imported", "20180516.csv"),
    MailCase("nul-bytes-in-csv", _with_csv(data=GOOD_CSV.replace(b"50000", b"5\x000\x0000")), 250, "failed",
             "20180516.csv", "NULバイト"),
    MailCase("one-megabyte-single-line-attachment", _with_csv(data=b"No.,\x94\x84\x8f\xe3\r\n1," + b"9" * (1 << 20)),
             250, "failed", "20180516.csv", "長すぎます"),
    MailCase("empty-multipart", _empty_multipart, 250, "failed", "(CSV添付なし)", NO_CSV),
    MailCase("message-rfc822-nesting", _forwarded, 250, "failed", "(CSV添付なし)", NO_CSV),
    # The first Content-Disposition wins (Python's email package); the name is never a mix of both.
    MailCase("duplicate-content-disposition",
             lambda to, mid: simple_mail(S, to, mid, [csv_part(disposition(b"20180516.csv") + b"\r\n"
                                                               + disposition(b"evil.csv"), GOOD_CSV)]),
             250, "imported", "20180516.csv"),
    MailCase("quoted-printable-garbage",
             _raw_part(b"Content-Type: text/csv\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                       + disposition(b"20180516.csv"), b"No.,=E5=A3=B2=E4=B8=8A\r\n1,=ZZ100=\r\n"),
             250, "failed", "20180516.csv", "数値ではありません"),
    # Sent as RFC 2231 continuations (one 10,000-character line would be refused as too long);
    # cut to 255 characters, the name no longer ends in .csv.
    MailCase("filename-ten-thousand-characters",
             _raw_part(b"Content-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n"
                       b"Content-Disposition: attachment;"
                       + b";".join(b"\r\n filename*%d=%s" % (i, b"a" * 70) for i in range(143))
                       + b";\r\n filename*143=.csv", b64_lines(GOOD_CSV)),
             250, "failed", "(CSV添付なし)", NO_CSV),
    MailCase("missing-from", _from(None), 550, "refused", text="From: ヘッダーがありません", sender=""),
    MailCase("two-from-headers", _from(S, twice=True), 550, "refused", text="複数", sender=""),
    MailCase("display-name-spoofing", _from(b'"sales@partner.example" <evil@x.example>'), 550, "refused",
             text="evil@x.example", sender="evil@x.example"),
    MailCase("encoded-word-display-name-spoofing", _from(b"=?utf-8?q?sales=40partner=2Eexample?= <evil@x.example>"),
             550, "refused", text="evil@x.example", sender="evil@x.example"),
    MailCase("comment-spoofing", _from(b"evil@x.example (sales@partner.example)"), 550, "refused",
             text="evil@x.example", sender="evil@x.example"),
    MailCase("two-addresses-in-from", _from(b"sales@partner.example, evil@x.example"), 550, "refused",
             text="1つだけ", sender=""),
    MailCase("ambiguous-from", _from(b"<sales@partner.example> <evil@x.example>"), 550, "refused",
             text="解釈できません", sender=""),
    MailCase("cp932-bytes-in-from", _from("営業 <sales@partner.example>".encode("cp932")), 550, "refused",
             text="文字コード", sender=""),
    # The envelope sender is registered, but the From: header is what counts (docs/spec.md section 3).
    MailCase("registered-envelope-foreign-from", _from(b"evil@x.example"), 550, "refused",
             text="evil@x.example", sender="evil@x.example"),
    MailCase("over-the-size-limit", _with_csv(data=csv_bytes([["No.", "売上", "備考"]]
                                                             + [["1", "1", "x" * 1000]] * 3000)), 552, "refused",
             "(メール)", text="上限(3,145,728バイト)を超えている", sender=""),
]


def test_there_are_enough_hostile_mails():
    assert len(MAIL_CASES) >= 20


@pytest.mark.parametrize("case", MAIL_CASES, ids=[case.id for case in MAIL_CASES])
def test_hostile_mail(env, case: MailCase):
    last = last_import_id(env)
    code, text = send(env, case.build(env.address, message_id()), case.envelope_from)
    assert code == case.reply, f"{code} {text}"

    [imp] = wait_finished(env, last, 1)
    assert imp.channel == "mail"
    assert case.filename is None or imp.filename == case.filename, imp.filename
    assert not re.search(r"[\x00-\x1f\x7f/\\]", imp.filename), imp.filename
    if case.outcome == "imported":
        assert imp.status == Import.SUCCEEDED, imp
        assert imp.row_count == 2 and imp.sender == SENDER
    elif case.outcome == "failed":
        assert imp.sender == SENDER
        assert_clear_failure(imp, case.text)
    else:
        assert case.outcome == "refused"
        assert imp.status == Import.REFUSED, imp
        assert (imp.sender or "") == case.sender
        assert case.text in imp.note, imp.note
        assert not imp.has_content and imp.report is None  # recorded without the content, no report
    assert_still_serving(env)


def test_smtp_smuggling_with_bare_line_ends_is_one_message(env):
    # "<LF>.<LF>" and friends must not end DATA: otherwise the text after them would be run as
    # commands, delivering a second mail that looks as if it came from the registered sender.
    last = last_import_id(env)
    smuggled = (b"MAIL FROM:<" + S + b">\r\nRCPT TO:<" + env.address.encode() + b">\r\nDATA\r\n"
                + simple_mail(S, env.address, message_id(), [csv_part(disposition(b"20180531.csv"), GOOD_CSV)]))
    outer = mail_head(S, env.address, message_id()) + b"Content-Type: text/plain\r\n\r\nhello\r\n"
    client = RawSmtp(env.port, timeout=TIMEOUT)
    try:
        assert client.reply().startswith("220")
        assert client.command(b"EHLO client.partner.example").startswith("250")
        assert client.command(b"MAIL FROM:<" + S + b">").startswith("250")
        assert client.command(b"RCPT TO:<" + env.address.encode() + b">").startswith("250")
        assert client.command(b"DATA").startswith("354")
        body = outer
        for ending in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"):
            body += ending + smuggled
        client.sock.sendall(body + b"\r\n.\r\n")
        assert client.reply().startswith("250")
        assert client.command(b"QUIT").startswith("221")
        assert client.buffer == b"", "the server answered commands that were inside the message"
    finally:
        client.close()
    rows = wait_finished(env, last, 1)
    assert [(r.filename, r.status) for r in rows] == [("(CSV添付なし)", Import.FAILED)]
    assert_still_serving(env)


def test_nesting_too_deep_for_the_parser_leaves_the_server_serving(env):
    # 1000 nested multiparts overflow the recursion of Python's email parser.
    last = last_import_id(env)
    raw = nested_mail(S, env.address, message_id(), 1000, csv_part(disposition(b"20180516.csv"), GOOD_CSV))
    code, text = send(env, raw)
    assert code == 250, f"{code} {text}"  # only the headers are read before 250
    wait_finished(env, last, 1)  # the drain's record of it, before the next mail's
    assert_still_serving(env)
    assert all(r.filename == "20180501.csv" or r.status == Import.FAILED for r in imports_after(env, last))


def test_nesting_too_deep_for_the_parser_is_accepted_then_reported_as_a_failed_import(env):
    # The full parse runs in the spool drain, after 250: the sender learns of it by the error report.
    last = last_import_id(env)
    raw = nested_mail(S, env.address, message_id(), 1000, csv_part(disposition(b"20180516.csv"), GOOD_CSV))
    code, text = send(env, raw)
    assert code == 250, f"{code} {text}"
    [imp] = wait_finished(env, last, 1)
    assert (imp.filename, imp.sender, imp.has_content) == ("(メール)", SENDER, False)
    assert_clear_failure(imp, "深すぎる")
    assert "送り直してください" in imp.errors[0].message


def test_an_attachment_cut_off_before_the_closing_boundary_is_not_imported(env):
    last = last_import_id(env)
    data = csv_bytes([["No.", "売上"]] + [["1", "123456789"]] * 40)
    part = csv_part(disposition(b"20180516.csv"), data)
    raw = simple_mail(S, env.address, message_id(), [part[:len(part) - len(part) // 3]], close=False)
    code, text = send(env, raw)
    assert code in (250, 550, 554), f"{code} {text}"
    [imp] = wait_finished(env, last, 1)
    assert imp.status != Import.SUCCEEDED, "a cut-off file was imported"


def test_error_reports_reach_the_relay(env):
    # Every failed import queued a report; the worker delivers them all through the relay.
    last = last_import_id(env)
    code, _ = send(env, _empty_multipart(env.address, message_id()))
    assert code == 250
    [imp] = wait_finished(env, last, 1)
    assert imp.status == Import.FAILED
    with env.app.app_context():
        queued = db.session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "error"))
    assert env.relay.wait_for(queued, timeout=TIMEOUT), (len(env.relay.messages), queued)
    reports = [mail for mail in env.relay.messages if "【取込エラー】" in mail.subject]
    assert len(reports) == queued and all(mail.rcpt_tos == [ERROR_TO] for mail in reports)


# ---------------------------------------------------------------------------------------
# The CPython e-mail test corpus (Lib/test/test_email/data/msg_*.txt), sent as the files are


def email_corpus() -> list[Path]:
    """The corpus files of this interpreter's test package (Debian: libpython3.11-testsuite)."""
    try:
        import test.test_email
    except ImportError:
        pytest.fail("the CPython test package is missing: install Debian's libpython3.11-testsuite "
                    "(it holds test/test_email/data/msg_*.txt)")
    files = sorted((Path(test.test_email.__file__).parent / "data").glob("msg_*.txt"))
    assert len(files) >= 40, f"only {len(files)} corpus messages found"
    return files


def set_senders(env, senders: list[str]) -> None:
    """Set the account's 送信元メールアドレス as stored (the corpus has a .local sender the form checks)."""
    from app.models import IntegrationSettings

    with env.app.app_context():
        settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == env.account_id))
        settings.senders = senders
        db.session.commit()


def test_the_cpython_email_corpus_is_answered_and_recorded_every_message(env):
    """Each message, LF line ends and all, gets an answer; each 250 or 550 leaves its record."""
    files = email_corpus()
    senders = sorted({head.sender for head in (parse_head(f.read_bytes()) for f in files) if head.sender})
    set_senders(env, [SENDER, *senders])  # their From: addresses, so the messages reach the full parse
    try:
        outcomes = {}
        for path in files:
            last = last_import_id(env)
            with smtplib.SMTP("127.0.0.1", env.port, timeout=TIMEOUT) as client:
                client.ehlo("client.partner.example")
                assert client.mail(SENDER)[0] == 250
                assert client.rcpt(env.address)[0] == 250
                code, text = client.data(path.read_bytes())  # as the file is: LF line ends
            assert code in (250, 550), f"{path.name}: {code} {text!r}"
            rows = wait_finished(env, last, 1)  # nothing lost: every answer left a record
            expected = Import.REFUSED if code == 550 else (Import.SUCCEEDED, Import.FAILED, Import.DISCARDED)
            assert all(r.status in expected for r in rows), (path.name, rows)
            outcomes[path.name] = (code, [r.filename for r in rows])
    finally:
        set_senders(env, [SENDER])
    refused = {name for name, (code, _) in outcomes.items() if code == 550}
    assert refused == {name for name in outcomes if parse_head((files[0].parent / name).read_bytes()).sender is None}
    assert_still_serving(env)
