"""A process on "another host": its own network namespace, joined to this one by a veth
pair, reaching the local PostgreSQL, RabbitMQ and fixture index through TCP forwarders
on the host side of the pair. The link can be cut (every packet dropped both ways,
silently, as a broken network does) and healed.

Only addresses of our own namespace pair are used (a /30 of 10.251.0.0/16); nothing
leaves the machine. Needs root and ``ip`` / ``iptables``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command"
    return None


def require_namespaces() -> None:
    """Skip (locally) or fail (under CI, which runs as root) when namespaces can't be made."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the partition tests must run under CI: {reason}")
    pytest.skip(reason)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Forwarder:
    """Accepts on ``host:0`` and copies bytes to and from ``target`` for each connection.

    It stands for the server's own TCP stack: a peer that stops answering is given up
    after the server's keepalive settings (``idle``, ``interval``, ``count``,
    ``user_timeout_ms``), and then the server-side connection is closed too, as the
    server would close a session whose client vanished.
    """

    def __init__(
        self,
        host: str,
        target: tuple[str, int],
        *,
        idle: int,
        interval: int,
        count: int,
        user_timeout_ms: int,
    ) -> None:
        self.target = target
        self._keepalive = (idle, interval, count, user_timeout_ms)
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="forwarder")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            idle, interval, count, user_timeout = self._keepalive
            down.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            down.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            down.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            down.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
            down.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout)
            try:
                up = socket.create_connection(self.target, timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            with self._lock:
                self._sockets |= {down, up}
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):  # one side gone: the other is closed too
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self._lock:
            self._sockets -= {src, dst}

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in list(self._sockets):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()


class RemoteHost:
    """A network namespace with a veth link to this one, and forwarders to local services."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"rbt-{tag}"
        self.host_if = f"rbh{tag}"
        self.ns_if = f"rbn{tag}"
        net = random.randrange(1, 250)
        block = random.randrange(0, 64) * 4
        self.host_ip = f"10.251.{net}.{block + 1}"
        self.ns_ip = f"10.251.{net}.{block + 2}"
        self.forwarders: list[Forwarder] = []
        self._cut = False
        self._made = False

    def create(self) -> RemoteHost:
        self._made = True
        _run("ip", "netns", "add", self.name)
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _run("ip", "link", "set", self.ns_if, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "netns", "exec", self.name)
        _run(*inside, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _run(*inside, "ip", "link", "set", self.ns_if, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        return self

    def forward(self, port: int, *, keepalive: dict[str, int]) -> tuple[str, int]:
        """An address in reach of the namespace that leads to 127.0.0.1:``port``."""
        forwarder = Forwarder(
            self.host_ip,
            ("127.0.0.1", port),
            idle=keepalive["tcp_keepalives_idle"],
            interval=keepalive["tcp_keepalives_interval"],
            count=keepalive["tcp_keepalives_count"],
            user_timeout_ms=keepalive["tcp_user_timeout"],
        )
        self.forwarders.append(forwarder)
        return forwarder.host, forwarder.port

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the namespace (``ip netns exec`` replaces itself: same pid)."""
        return ["ip", "netns", "exec", self.name, *args]

    def _rules(self, action: str) -> None:
        # Dropped where each side receives: nothing reaches the other end, and the senders
        # get no error either (no RST, no ICMP): a silent partition.
        _run("iptables", "-t", "raw", action, "PREROUTING", "-i", self.host_if, "-j", "DROP")
        _run(
            "ip", "netns", "exec", self.name,
            "iptables", "-t", "raw", action, "PREROUTING", "-i", self.ns_if, "-j", "DROP",
        )  # fmt: skip

    def cut(self) -> None:
        if not self._cut:
            self._rules("-I")
            self._cut = True

    def heal(self) -> None:
        if self._cut:
            self._rules("-D")
            self._cut = False

    def close(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()
        if not self._made:
            return
        with contextlib.suppress(subprocess.SubprocessError):
            self.heal()
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], check=False, capture_output=True)

    def exists(self) -> bool:
        return Path(f"/run/netns/{self.name}").exists()

    def __enter__(self) -> RemoteHost:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()
