"""The run command starts the whole product on embedded servers and leaves nothing behind when stopped."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def descendants(root_pid: int) -> set[int]:
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()
            and " Z " not in Path(f"/proc/{pid}/stat").read_text()}


def read_banner(runner, until: str = "Database:") -> str:
    """What the run command prints up to the line starting with `until`."""
    lines = []
    for line in runner.stdout:
        lines.append(line)
        if line.startswith(until):
            return "".join(lines)
    raise AssertionError("the run command stopped early:\n" + "".join(lines))


def redis_answers(socket_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(socket_path)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(url: str, deadline_s: float) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {deadline_s} s")


def test_run_serves_everything_then_stops_every_server(tmp_path):
    """A first run (which creates the embedded servers' data and prints the credentials) with two web processes
    stopped by SIGTERM, then a second run on the same data (no credentials printed again) with one, stopped by
    Ctrl-C (SIGINT)."""
    dev_dir = tmp_path / "dev"
    first_banner = run_then_stop(dev_dir, signal.SIGTERM, web_processes=2)
    assert "auth_token" in first_banner  # the first run prints the credentials once
    second_banner = run_then_stop(dev_dir, signal.SIGINT, web_processes=1)
    assert "auth_token" not in second_banner


def run_then_stop(dev_dir: Path, stop_signal: int, web_processes: int) -> str:
    """Start the run command, check everything serves, stop it with `stop_signal`, check nothing is left;
    what it printed up to its database line."""
    port = free_port()
    # As a user runs it: on servers of its own, and not as a test worker (which takes a Redis database of its own).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_XDIST_WORKER")}
    env.update(VOICEBOTS_DEV_DIR=str(dev_dir), PORT=str(port), WEB_PROCESSES=str(web_processes))
    runner = subprocess.Popen([sys.executable, "manage.py", "run"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_banner(runner)
        if "Admin login" in banner:  # the first run's credentials, with where to use them
            assert f"http://127.0.0.1:{port}/admin/" in banner, banner
        redis_socket = banner.split("Redis: unix://", 1)[1].split()[0]
        ready = read_banner(runner, until="Voicebots is running")
        assert "ready in" in ready.splitlines()[-1]
        # The banner comes once the web answers: no waiting for it after.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/admin/login/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/schema/").status_code == 200
        assert processes_mentioning(str(dev_dir)), "the embedded PostgreSQL should be running"
        deadline = time.monotonic() + 30  # the worker and beat start after the web
        while time.monotonic() < deadline:
            children = descendants(runner.pid)
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children
                        if Path(f"/proc/{pid}").exists()]
            if any(b"worker" in c for c in commands) and any(b"beat" in c for c in commands):
                break
            time.sleep(0.3)
        assert sum(b"config.web_process" in c for c in commands) == web_processes, "web processes share the port"
        assert any(b"celery" in c and b"worker" in c for c in commands)
        assert any(b"celery" in c and b"beat" in c for c in commands)
        assert redis_answers(redis_socket), "the embedded Redis should be running"
    finally:
        runner.send_signal(stop_signal)
        output, _ = runner.communicate(timeout=90)
    assert "terminate called" not in output and "Traceback" not in output, output[-3000:]
    assert "draining" in output and "Stopped." in output, output[-3000:]
    time.sleep(0.5)
    leftovers = processes_mentioning(str(dev_dir))
    assert leftovers == [], leftovers
    assert alive(children) == set(), "web, worker and beat must all have stopped"
    assert not redis_answers(redis_socket), "the embedded Redis must have stopped"
    return banner
