"""How `make test` shares the tests between its workers (tests/scheduling.py)."""
from types import SimpleNamespace

import pytest

from tests import scheduling


@pytest.fixture
def record(tmp_path, monkeypatch):
    path = tmp_path / "test-durations.json"
    monkeypatch.setattr(scheduling, "durations_path", lambda: path)
    return path


def items(*nodeids):
    return [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]


def test_the_slowest_recorded_tests_go_first_and_unknown_ones_keep_their_order(record):
    scheduling.record_durations({"a.py::quick": 0.1, "b.py::slow": 30.0, "c.py::middling": 2.0})
    scheduling.record_durations({"a.py::quick": 0.2})  # a later run of one test keeps the others' times

    collected = items("a.py::quick", "new.py::first", "c.py::middling", "b.py::slow", "new.py::second")
    scheduling.slowest_first(collected)

    assert [item.nodeid for item in collected] == [
        "b.py::slow", "c.py::middling", "a.py::quick", "new.py::first", "new.py::second"]
    assert scheduling.recorded_durations()["a.py::quick"] == 0.2


def test_without_a_record_the_order_is_pytests(record):
    collected = items("b.py::x", "a.py::y")
    scheduling.slowest_first(collected)
    assert [item.nodeid for item in collected] == ["b.py::x", "a.py::y"]
    record.write_text("not json")
    scheduling.slowest_first(collected)
    assert [item.nodeid for item in collected] == ["b.py::x", "a.py::y"]


def test_modules_sharing_a_server_are_one_unit_and_other_tests_one_each():
    split = scheduling.SuiteScheduling._split_scope
    shared = next(iter(scheduling.ONE_WORKER_MODULES))
    assert split(None, f"{shared}::test_one") == split(None, f"{shared}::test_two[x]") == shared
    assert split(None, "tests/test_smoke.py::test_health") == "tests/test_smoke.py::test_health"
