"""No test reaches beyond this machine's loopback: a pytest plugin (loaded by tests/conftest.py).

From the start of the run, every socket of this process may connect (or send a datagram) only to a loopback
address (127.0.0.0/8, ::1) or a Unix socket, and may look up only `localhost` and IP literals. Anything else
raises at once, as on a machine with no network (`NetworkBlocked`, an OSError, or `LookupBlocked`, a
socket.gaierror), and is recorded; the test during which it happened then fails at teardown, even if the code
under test caught the error and carried on (a function runner reporting "unreachable", say). Threads are covered:
the guard patches the socket class and the resolver of the whole process.

What it cannot see: other processes (the Celery workers, Daphne servers and `manage.py run` that some tests
start, Chromium, Playwright's driver, espeak-ng), and C libraries that open their own sockets (libpq, which the
tests point at the embedded PostgreSQL's Unix socket).
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import threading

import pytest

LOOKUP_NAMES = {"localhost"}


class NetworkBlocked(OSError):
    """A connection to an address that is not loopback, refused by the test run."""


class LookupBlocked(socket.gaierror):
    """A name lookup (DNS) of a host other than localhost, refused by the test run."""


_violations: list[str] = []
_lock = threading.Lock()
_originals: dict[str, object] = {}


def is_loopback(host: str) -> bool:
    if host in LOOKUP_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _record(what: str) -> None:
    where = threading.current_thread().name
    with _lock:
        _violations.append(f"{what} (thread {where})")


def take_violations() -> list[str]:
    """What was refused since the last call, and forget it."""
    with _lock:
        taken = list(_violations)
        _violations.clear()
    return taken


def resolve_as_unknown(monkeypatch, *names: str) -> None:
    """For the rest of a test, looking up `names` fails as DNS does for a name that does not exist (EAI_NONAME),
    without asking the network; other names go to the guarded resolver."""
    resolver = socket.getaddrinfo
    unknown = {name.lower() for name in names}

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower() in unknown:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolver(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _outside(address: object) -> str | None:
    """The host of an (IP) socket address that is not loopback; None for loopback and Unix sockets."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return None  # a Unix socket path (str or bytes), or a family the guard does not judge
    host = address[0]
    return None if is_loopback(host) else host


def _refuse_connection(verb: str, address: tuple) -> NetworkBlocked:
    message = f"the test run allows only loopback: {verb} {address[0]} port {address[1]}"
    _record(message)
    return NetworkBlocked(errno.ENETUNREACH, message)


def _guarded_connect(self, address):
    if _outside(address) is not None:
        raise _refuse_connection("connect to", address)
    return _originals["connect"](self, address)


def _guarded_connect_ex(self, address):
    if _outside(address) is not None:
        _refuse_connection("connect to", address)
        return errno.ENETUNREACH
    return _originals["connect_ex"](self, address)


def _guarded_sendto(self, data, *args):
    address = args[-1]
    if _outside(address) is not None:
        raise _refuse_connection("send a datagram to", address)
    return _originals["sendto"](self, data, *args)


def _check_lookup(host: object) -> None:
    if host is None:
        return
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name == "" or is_ip_literal(name) or name.lower() in LOOKUP_NAMES:
        return  # nothing is looked up for a literal; the connection to it is judged by connect()
    message = f"the test run allows only loopback: a name lookup of {name!r}"
    _record(message)
    raise LookupBlocked(socket.EAI_NONAME, message)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _check_lookup(host)
    return _originals["getaddrinfo"](host, *args, **kwargs)


def _guarded_gethostbyname(host):
    _check_lookup(host)
    return _originals["gethostbyname"](host)


def _guarded_gethostbyname_ex(host):
    _check_lookup(host)
    return _originals["gethostbyname_ex"](host)


PATCHES = {
    (socket.socket, "connect"): _guarded_connect,
    (socket.socket, "connect_ex"): _guarded_connect_ex,
    (socket.socket, "sendto"): _guarded_sendto,
    (socket, "getaddrinfo"): _guarded_getaddrinfo,
    (socket, "gethostbyname"): _guarded_gethostbyname,
    (socket, "gethostbyname_ex"): _guarded_gethostbyname_ex,
}


def install() -> None:
    if _originals:
        return
    for (owner, name), guarded in PATCHES.items():
        _originals[name] = getattr(owner, name)
        setattr(owner, name, guarded)


def uninstall() -> None:
    for (owner, name), _ in PATCHES.items():
        if name in _originals:
            setattr(owner, name, _originals.pop(name))


def pytest_configure(config):
    install()


def pytest_unconfigure(config):
    uninstall()


@pytest.fixture(autouse=True)
def _only_loopback():
    """Fails the test if anything in this process reached beyond loopback while it ran (setup and teardown
    of its other fixtures included: this fixture is set up first and torn down last)."""
    take_violations()  # a leftover of an earlier test's stray thread is not this test's doing
    yield
    refused = take_violations()
    if refused:
        pytest.fail("Tests must not reach the network beyond loopback:\n  " + "\n  ".join(refused), pytrace=False)
