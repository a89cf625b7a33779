"""What servers/sftpfs.py relies on in asyncssh beyond its documented API, pinned here.

An upload is complete only when its handle is closed by the client's SSH_FXP_CLOSE. asyncssh
calls SFTPServer.close() for that, and also for every handle still open when the session
ends, then exit(). The two are told apart by the channel: open on both sides
(`is_closing()` False and `_recv_state == "open"`) during a client's CLOSE, not so when the
session is ending.
"""
from __future__ import annotations

import asyncio
from typing import ClassVar

import asyncssh


class Recording(asyncssh.SFTPServer):
    seen: ClassVar[list[tuple[str, bool]]] = []  # one server at a time in this test

    def open(self, path, pflags, attrs):
        return object()

    def write(self, file_obj, offset, data):
        return len(data)

    def close(self, file_obj):
        chan = self.channel
        Recording.seen.append(("close", not chan.is_closing() and chan._recv_state == "open"))

    def exit(self):
        Recording.seen.append(("exit", False))


class Anyone(asyncssh.SSHServer):
    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return True

    def validate_password(self, username, password):
        return True


async def _sessions(cut) -> list[tuple[str, bool]]:
    Recording.seen = []
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(Anyone, "127.0.0.1", 0, server_host_keys=[key], sftp_factory=Recording)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await asyncssh.connect("127.0.0.1", port, username="u", password="p", known_hosts=None)
        sftp = await conn.start_sftp_client()
        done = await sftp.open("done.csv", "wb")
        await done.write(b"x")
        await done.close()
        left = await sftp.open("left.csv", "wb")
        await left.write(b"x")
        await cut(conn, sftp)
        for _ in range(200):
            if ("exit", False) in Recording.seen:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
    return Recording.seen


def test_a_clients_close_sees_an_open_channel_and_the_session_end_does_not():
    async def end_channel(conn, sftp):  # the client's EOF and close of the channel, the handle still open
        sftp.exit()
        await sftp.wait_closed()
        conn.close()

    async def lose_connection(conn, sftp):  # the TCP connection dies
        conn.abort()

    for cut in (end_channel, lose_connection):
        assert asyncio.run(_sessions(cut)) == [("close", True), ("close", False), ("exit", False)], cut.__name__
