"""The IMAP side of a mailbox fetch: imaplib with a checked TLS context, and the few commands Renkei uses.

Decisions (where docs/spec.md is silent):
- TLS always: implicit (IMAPS, 993) or STARTTLS (143); a server that offers no STARTTLS is an
  error, never a plain-text login. The certificate and host name are checked against the
  system's CAs (plus RENKEI_IMAP_CA_FILE) unless the account turned the check off.
- Only messages not marked \\Deleted are listed, so a message moved with COPY + \\Deleted on a
  server without MOVE and UIDPLUS (where EXPUNGE of one UID is impossible) is not seen again.
- Folder names are sent in modified UTF-7 (RFC 3501 5.1.3): `Renkei/処理済` works on every
  server; `/` is replaced by the server's hierarchy delimiter.
- IDLE (RFC 2177) is written by hand (imaplib of Python 3.11 has none) and used only when the
  post-login CAPABILITY lists it. One IDLE waits at most IDLE_MAX_SECONDS (25 minutes: servers
  may drop a client idle for 29 or 30), then DONE. News is an untagged EXISTS with more
  messages than the session knew of (EXPUNGEs counted down): a server that repeats the count
  at each IDLE start causes no fetch. RECENT alone is not news (RFC 3501 sends EXISTS whenever
  the size changes; \\Recent is gone from IMAP4rev2).
"""
from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl
import time
from typing import Self

from app.services.mailbox import Login

IDLE_MAX_SECONDS = 25 * 60
_COUNT = re.compile(rb"^\* (\d+) (EXISTS|EXPUNGE)\b", re.IGNORECASE)


class MailboxError(Exception):
    """A fetch that could not run; `text` is the Japanese message shown on the tab."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def encode_folder(name: str) -> str:
    """`name` in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(data) -> str:
    parts = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data or [] if d]
    return " ".join(parts)[:200]


class MailboxClient:
    """One IMAP session with one account's mailbox (use as a context manager: it logs out)."""

    def __init__(self, login: Login, *, timeout: float = 60.0, ca_file: str | None = None):
        self.login = login
        self.timeout = timeout
        self.ca_file = ca_file
        self.conn: imaplib.IMAP4 | None = None
        self.delimiter = "/"
        self.exists: int | None = None  # messages in the selected folder, as the server last said

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(self.ca_file)
        if not self.login.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __enter__(self) -> Self:
        login = self.login
        try:
            if login.tls == "starttls":
                self.conn = imaplib.IMAP4(login.host, login.port, timeout=self.timeout)
                if "STARTTLS" not in self.conn.capabilities:
                    raise MailboxError("サーバーがSTARTTLSに対応していません。暗号化を「SSL/TLS」にしてください。")
                self.conn.starttls(self._context())
            else:
                self.conn = imaplib.IMAP4_SSL(login.host, login.port, ssl_context=self._context(), timeout=self.timeout)
        except MailboxError:
            self._close()
            raise
        except ssl.SSLCertVerificationError as error:
            self._close()
            raise MailboxError(f"サーバー証明書を確認できません: {error.verify_message or error}") from error
        except (OSError, imaplib.IMAP4.error) as error:
            self._close()
            raise MailboxError(f"IMAPサーバー {login.host}:{login.port} に接続できません: {error}") from error
        try:
            self.conn.login(login.username, login.password)
        except imaplib.IMAP4.error as error:
            self._close()
            raise MailboxError(f"ログインできません(ユーザー名かパスワードが違います): {error}") from error
        except OSError as error:
            self._close()
            raise MailboxError(f"IMAPサーバーとの接続が切れました: {error}") from error
        # The capabilities after login are the ones that count (MOVE, UIDPLUS are often listed only then).
        typ, data = self.conn.capability()
        if typ == "OK" and data and data[-1]:
            self.conn.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
        self.delimiter = self._delimiter()
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            try:
                self.conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
        self._close()

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.shutdown()
            except (OSError, imaplib.IMAP4.error):
                pass
        self.conn = None

    def _ok(self, typ: str, data, what: str):
        if typ != "OK":
            raise MailboxError(f"{what}: {_reason(data)}")
        return data

    def _delimiter(self) -> str:
        typ, data = self.conn.list('""', '""')
        match = re.search(rb'\) "(.)"', data[0] or b"") if typ == "OK" and data and data[0] else None
        return match.group(1).decode() if match else "/"

    def _name(self, folder: str) -> str:
        return _quote(encode_folder(folder.replace("/", self.delimiter)))

    def select(self, folder: str) -> int:
        """Open `folder` for reading and moving; return its UIDVALIDITY."""
        typ, data = self.conn.select(self._name(folder))
        self._ok(typ, data, f"フォルダ「{folder}」を開けません")
        self.exists = int(data[-1]) if data and data[-1] and data[-1].isdigit() else None
        _, values = self.conn.response("UIDVALIDITY")
        if not values or not values[0]:
            raise MailboxError(f"フォルダ「{folder}」のUIDVALIDITYがわかりません")
        return int(values[0])

    def uids(self) -> list[int]:
        """The UIDs of the folder's messages not marked \\Deleted, in order."""
        data = self._ok(*self.conn.uid("SEARCH", "UNDELETED"), "メールの一覧を取得できません")
        return sorted(int(n) for n in (data[0] or b"").split())

    def lowest_uid(self) -> int | None:
        """The lowest UID in the folder, \\Deleted messages included (someone may still undelete one)."""
        data = self._ok(*self.conn.uid("SEARCH", "ALL"), "メールの一覧を取得できません")
        return min((int(n) for n in (data[0] or b"").split()), default=None)

    def size(self, uid: int) -> int | None:
        data = self._ok(*self.conn.uid("FETCH", str(uid), "(RFC822.SIZE)"), "メールの大きさを取得できません")
        match = re.search(rb"RFC822\.SIZE (\d+)", b" ".join(d for d in data if isinstance(d, bytes)))
        return int(match.group(1)) if match else None

    def fetch(self, uid: int) -> bytes | None:
        """The whole message (BODY.PEEK: its \\Seen flag is left as it was); None when it is gone."""
        data = self._ok(*self.conn.uid("FETCH", str(uid), "(BODY.PEEK[])"), "メールを取得できません")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return item[1]
        return None

    def ensure_folder(self, folder: str) -> None:
        """Create `folder` and its parents where missing (an existing one is left as it is)."""
        parts = folder.split("/")
        for depth in range(1, len(parts) + 1):
            typ, data = self.conn.create(self._name("/".join(parts[:depth])))
            if typ != "OK" and depth == len(parts) and b"ALREADYEXISTS" not in b" ".join(
                    d for d in data or [] if isinstance(d, bytes)).upper():
                # Some servers say NO without the response code: the folder may still be there.
                typ, listed = self.conn.list('""', self._name(folder))
                if typ != "OK" or not listed or listed[0] is None:
                    raise MailboxError(f"フォルダ「{folder}」を作成できません: {_reason(data)}")

    def move(self, uid: int, folder: str) -> None:
        """Move one message: UID MOVE, else UID COPY + \\Deleted (+ UID EXPUNGE of that UID with UIDPLUS)."""
        name = self._name(folder)
        if "MOVE" in self.conn.capabilities:
            self._ok(*self.conn.uid("MOVE", str(uid), name), f"フォルダ「{folder}」に移動できません")
            return
        self._ok(*self.conn.uid("COPY", str(uid), name), f"フォルダ「{folder}」にコピーできません")
        self._ok(*self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), "削除済みの印を付けられません")
        if "UIDPLUS" in self.conn.capabilities:
            self._ok(*self.conn.uid("EXPUNGE", str(uid)), "移動したメールを元のフォルダから消せません")

    # --- IDLE (RFC 2177) -------------------------------------------------------------

    @property
    def can_idle(self) -> bool:
        return self.conn is not None and "IDLE" in self.conn.capabilities

    def idle(self, wait_seconds: float) -> bool:
        """IDLE in the selected folder for up to `wait_seconds` (at most IDLE_MAX_SECONDS); True when new mail was announced.

        The socket's timeout bounds each wait; BYE, a cut connection, a timeout of the server's
        answers or interrupt() from another thread raise MailboxError.
        """
        if not self.can_idle:
            raise MailboxError("サーバーがIDLEに対応していません。")
        conn = self.conn
        tag = conn._new_tag()
        deadline = time.monotonic() + max(0.0, min(wait_seconds, IDLE_MAX_SECONDS))
        news = False
        try:
            conn.send(tag + b" IDLE\r\n")
            while True:  # up to the continuation: untagged lines may come first
                line = self._line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    raise MailboxError(f"IDLEを開始できません: {line.decode('utf-8', 'replace')[:200]}")
                news = self._counted(line) or news
            while not news:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                line = self._line(remaining)
                if line is None:
                    break  # the wait is over
                news = self._counted(line)
            conn.send(b"DONE\r\n")
            while True:
                line = self._line()
                if line.startswith(tag + b" "):
                    if not line[len(tag) + 1:].upper().startswith(b"OK"):
                        raise MailboxError(f"IDLEが失敗しました: {line.decode('utf-8', 'replace')[:200]}")
                    return news
                news = self._counted(line) or news
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(f"IMAPサーバーとの接続が切れました: {error}") from error
        finally:
            conn.tagged_commands.pop(tag, None)  # imaplib keeps an entry per tag it hands out
            if self.conn is not None and self.conn.sock is not None:
                try:
                    self.conn.sock.settimeout(self.timeout)
                except OSError:
                    pass

    def _counted(self, line: bytes) -> bool:
        """Follow the folder's size; True when `line` announces more messages than known."""
        match = _COUNT.match(line)
        if match is None:
            return False
        number = int(match.group(1))
        if match.group(2).upper() == b"EXPUNGE":
            if self.exists:
                self.exists -= 1
            return False
        more = self.exists is None or number > self.exists
        self.exists = number
        return more

    def _line(self, wait: float | None = None) -> bytes | None:
        """One line from the server; with `wait`, None when nothing came within that many seconds."""
        conn = self.conn
        conn.sock.settimeout(self.timeout if wait is None else wait)
        try:
            line = conn.file.readline(imaplib._MAXLINE + 1)
        except TimeoutError:
            if wait is None:
                raise
            # A timed-out socket file refuses every later read: read on with a fresh one, as
            # imaplib itself does after STARTTLS (a line cut in the middle by the timeout is lost;
            # the fetch of the next minute sees that mail anyway).
            old, conn.file = conn.file, conn.sock.makefile("rb")
            old.close()  # the socket itself stays open
            return None
        if not line:
            raise MailboxError("IMAPサーバーとの接続が切れました(EOF)。")
        if len(line) > imaplib._MAXLINE:
            raise MailboxError("IMAPサーバーの応答が長すぎます。")
        if line.upper().startswith(b"* BYE"):
            raise MailboxError(f"IMAPサーバーが接続を閉じました: {line.decode('utf-8', 'replace').strip()[:200]}")
        return line.rstrip(b"\r\n")

    def interrupt(self) -> None:
        """Wake a blocked idle() from another thread: it raises MailboxError (the session is over)."""
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)  # the plain socket: the SSL object is the reader's
            except OSError:
                pass
