"""How `make test` (`pytest -n 4`) shares the tests between its pytest-xdist workers.

Each test is a unit of its own, handed to whichever worker runs short of work, except in a module with a
module-scoped fixture: its tests share what the fixture started, so one worker takes the whole module. (xdist's
own `--dist loadgroup` would do this with `xdist_group` marks, but the pytest-xdist version pinned renames the
tests in a way the pinned pytest ignores.)

The slowest tests go first, so that the run does not end with one worker on a 30-second test while the others
wait: every run records how long each test took in `.dev/test-durations.json`, and the next one orders by it
(a test it does not know keeps its place among the quick ones; with no record, the order is pytest's).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

TESTS = Path(__file__).resolve().parent
MODULE_FIXTURE = re.compile(r"""@pytest\.fixture\([^)]*scope=["']module["']""")


def modules_with_a_module_fixture(directory: Path = TESTS) -> frozenset[str]:
    """Modules whose tests share something started once per module (a web server in a process of its own, a
    model). Split between workers, such a module's fixture is started again by each worker that comes to it
    (test_multiprocess's deployment of two web processes and two workers: ~10 s each time)."""
    return frozenset(f"tests/{path.name}" for path in directory.glob("test_*.py")
                     if MODULE_FIXTURE.search(path.read_text()))


ONE_WORKER_MODULES = modules_with_a_module_fixture()


class SuiteScheduling(LoadScopeScheduling):
    """Units of one test, or one module of ONE_WORKER_MODULES; a worker is given more when it has two or fewer
    tests left (LoadScopeScheduling's rule), the units with the most tests first."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in ONE_WORKER_MODULES else nodeid


def durations_path() -> Path:
    from config.embedded import DEV_DIR

    return DEV_DIR / "test-durations.json"


def recorded_durations() -> dict[str, float]:
    try:
        return json.loads(durations_path().read_text())
    except (OSError, ValueError):
        return {}


def slowest_first(items: list) -> None:
    """Order `items` in place by their last recorded duration, longest first (a stable sort). A module of
    ONE_WORKER_MODULES goes by its whole time and keeps its tests in their written order, which they may rely on
    (test_multiprocess kills one of its web processes in its last test)."""
    known = recorded_durations()
    modules: dict[str, float] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if module in ONE_WORKER_MODULES:
            modules[module] = modules.get(module, 0.0) + known.get(item.nodeid, 0.0)

    def duration(item) -> float:
        return modules.get(item.nodeid.split("::", 1)[0], known.get(item.nodeid, 0.0))

    items.sort(key=lambda item: -duration(item))


def record_durations(durations: dict[str, float]) -> None:
    """Merge this run's durations into the record (tests not run this time keep theirs)."""
    if not durations:
        return
    path = durations_path()
    merged = {**recorded_durations(), **{nodeid: round(seconds, 3) for nodeid, seconds in durations.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(merged, indent=0, sort_keys=True))
    temporary.replace(path)
