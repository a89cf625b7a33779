"""What servers/ftp*.py rely on in pyftpdlib beyond its public API, one test per private name.

pyftpdlib 2.2 renamed several of these. requirements.txt bounds the version; when a new version
is allowed, these tests say which name moved before an FTP upload silently behaves differently.
"""
from __future__ import annotations

import errno
import inspect
import socket
import threading

import pytest
from pyftpdlib import exceptions, ioloop
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.servers import ThreadedFTPServer


def test_errnos_disconnected_is_a_set_of_reset_errnos():
    # GuardedDTPHandler.recv: a reset is remembered as a cut-off upload, not read as the end of the file.
    names = ioloop._ERRNOS_DISCONNECTED
    assert {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE} <= set(names)
    assert all(isinstance(code, int) for code in names)


def test_errnos_retry_is_a_set_of_would_block_errnos():
    # GuardedDTPHandler.recv: "try again later" is passed on to pyftpdlib as _RetryError.
    names = ioloop._ERRNOS_RETRY
    assert {errno.EAGAIN, errno.EWOULDBLOCK} <= set(names)
    assert not set(names) & set(ioloop._ERRNOS_DISCONNECTED)


def test_retry_error_raised_by_recv_is_swallowed_by_pyftpdlibs_read_loop():
    # GuardedDTPHandler.recv raises exceptions._RetryError; pyftpdlib's AsyncChat.handle_read must
    # still treat it as "nothing to read yet", else every would-block read errors the transfer.
    assert issubclass(exceptions._RetryError, Exception)
    assert not issubclass(exceptions._RetryError, OSError)
    assert ioloop._RetryError is exceptions._RetryError

    class Channel(ioloop.AsyncChat):
        def __init__(self):  # no socket: only handle_read's error path is exercised
            self.ac_in_buffer_size = 16

        def recv(self, buffer_size):
            raise exceptions._RetryError

    Channel().handle_read()  # raises if pyftpdlib no longer catches it


class _Control:
    """The parts of FTPHandler a DTPHandler touches while it opens and closes."""

    def __init__(self, loop):
        self.ioloop = loop
        self.responses: list[tuple[str, object]] = []
        self.closed_dtp = 0

    def log(self, *args, **kwargs):
        pass

    log_exception = log

    def respond(self, text, logfun=None):
        self.responses.append((text, logfun))

    def _on_dtp_close(self):
        self.closed_dtp += 1

    def get_repr_info(self, as_str=False):
        return "control"


@pytest.fixture()
def data_channel():
    loop = ioloop.IOLoop()
    ours, theirs = socket.socketpair()
    control = _Control(loop)
    try:
        channel = DTPHandler(ours, control)
        yield channel, control
    finally:
        theirs.close()
        ours.close()
        loop.close()


def test_dtp_handler_resp_is_the_reply_sent_on_close(data_channel):
    # GuardedDTPHandler sets _resp to (text, logfun) to answer 552/426/451 instead of 226.
    channel, control = data_channel
    assert channel._resp == ()
    logfun = object()
    channel._resp = ("552 too large", logfun)
    channel.close()
    assert control.responses == [("552 too large", logfun)]


def test_dtp_handler_closed_flag_tracks_close(data_channel):
    # GuardedDTPHandler and _control_gone read _closed to skip a channel already closed.
    channel, control = data_channel
    assert channel._closed is False
    channel.close()
    assert channel._closed is True
    channel.close()  # a second close sends nothing more
    assert control.closed_dtp == 1


def test_ftp_handler_in_dtp_queue_holds_the_file_of_a_stor_waiting_for_its_data_connection():
    # RenkeiHandlerMixin._drop_queued_upload reads _in_dtp_queue as (file object, command) or None.
    stor = inspect.getsource(FTPHandler.ftp_STOR)
    assert "self._in_dtp_queue = (fd, cmd)" in stor
    connected = inspect.getsource(FTPHandler._on_dtp_connection)
    assert "file, cmd = self._in_dtp_queue" in connected
    assert "self._in_dtp_queue = None" in inspect.getsource(FTPHandler.__init__)


def test_threaded_server_keeps_exit_and_lock_on_the_class():
    # servers/ftp._Server gives each server its own _exit and _lock; pyftpdlib's loop must use them.
    assert isinstance(ThreadedFTPServer._exit, threading.Event)
    assert isinstance(ThreadedFTPServer._lock, type(threading.Lock()))
    spawner = inspect.getsource(next(c for c in ThreadedFTPServer.__mro__ if "_loop" in vars(c)))
    assert "self._exit.clear()" in spawner and "self._exit.is_set()" in spawner
    assert "with self._lock" in spawner
    assert isinstance(ThreadedFTPServer.poll_timeout, float)
