"""The OSC sockets: a UDP server thread that turns packets into plain `(address, args)` tuples in an
inbox, and a sender for what the studio says back. Qt-free; engine.live decides what messages mean.

The server thread never touches the workspace: it parses (python-osc), appends to the inbox under a
lock and calls `wake()` once per batch (the window's wake emits a queued Qt signal, so the inbox is
drained on the GUI thread). A flood cannot grow without bound: past INBOX_LIMIT the oldest waiting
messages are dropped and counted.
"""
from __future__ import annotations

import socket
import threading
from collections import deque
from typing import Callable

from pythonosc.osc_packet import OscPacket, ParseError
from pythonosc.udp_client import SimpleUDPClient

from .live import MALFORMED

INBOX_LIMIT = 100_000          # messages waiting for the GUI thread (a few MB at most)
RECEIVE_BUFFER = 4 << 20       # bytes of datagrams the kernel holds for us
POLL_S = 0.2                   # how often the server thread looks at its stop flag


class OscServer:
    def __init__(self,
                 port: int,                          # UDP port to listen on; 0 = any free port (see .port)
                 wake: Callable[[], None],           # called from the server thread when the inbox was empty
                 host: str = "127.0.0.1",            # "0.0.0.0" listens on every network interface
                 ):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # room for a burst while this thread waits for a core (the kernel caps it at net.core.rmem_max)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            self.sock.bind((host, port))             # OSError: port taken, or not ours to bind
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(POLL_S)
        self.host, self.port = host, self.sock.getsockname()[1]
        self._wake = wake
        self._lock = threading.Lock()
        self._inbox: deque[tuple[str, tuple]] = deque()
        self.dropped = 0                             # messages dropped because the inbox was full
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"osc-{self.port}", daemon=True)
        self._thread.start()

    def take(self) -> list[tuple[str, tuple]]:
        """Every message waiting, oldest first (GUI thread)."""
        with self._lock:
            messages = list(self._inbox)
            self._inbox.clear()
        return messages

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * POLL_S + 1)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, _sender = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:        # closed under us
                return
            try:
                messages = [(m.message.address, tuple(m.message.params)) for m in OscPacket(data).messages]
            except (ParseError, ValueError, IndexError):
                messages = [(MALFORMED, ())]
            with self._lock:
                was_empty = not self._inbox
                for message in messages:
                    if len(self._inbox) >= INBOX_LIMIT:
                        self._inbox.popleft()
                        self.dropped += 1
                    self._inbox.append(message)
            if was_empty:
                self._wake()


class OscSender:
    """Sends `(address, args)` to host:port over UDP; a failure to send never stops the studio."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.client = SimpleUDPClient(host, port)
        self.failures = 0

    def send(self, address: str, args: tuple) -> None:
        try:
            self.client.send_message(address, list(args))
        except OSError:            # nobody listening on some systems, a network that went away
            self.failures += 1


def parse_host_port(text: str) -> tuple[str, int]:
    """"127.0.0.1:9000" -> ("127.0.0.1", 9000); ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9000")
    return host, int(port)
