"""How `make test` (`pytest -n 2`) shares the tests between its pytest-xdist workers.

Each test is a unit of its own, handed to whichever worker runs short of work, in collection order, except the
modules below: their tests share a module-scoped server, so one worker takes the whole module. (xdist's own
`--dist loadgroup` would do this with `xdist_group` marks, but the pytest-xdist version pinned renames the tests
in a way the pinned pytest ignores.)
"""
from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# Modules whose tests share a server started once per module (a web server in a process of its own).
ONE_WORKER_MODULES = frozenset({
    "tests/test_voice_page.py",
    "tests/test_call_simulators.py",
})


class TestScheduling(LoadScopeScheduling):
    """Units of one test, or one module of ONE_WORKER_MODULES; a worker is given more when it has two or fewer
    tests left (LoadScopeScheduling's rule), the units with the most tests first."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in ONE_WORKER_MODULES else nodeid
