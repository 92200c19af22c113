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


def test_a_module_with_a_module_scoped_fixture_goes_to_one_worker(tmp_path):
    (tmp_path / "test_server.py").write_text('@pytest.fixture(scope="module")\ndef server():\n    ...\n')
    (tmp_path / "test_plain.py").write_text('@pytest.fixture\ndef client():\n    ...\n')
    (tmp_path / "test_model.py").write_text("@pytest.fixture(autouse=True, scope='module')\ndef model():\n    ...\n")
    assert scheduling.modules_with_a_module_fixture(tmp_path) == {"tests/test_server.py", "tests/test_model.py"}
    assert "tests/test_http_limits.py" in scheduling.ONE_WORKER_MODULES  # its Daphne server: ~5 s to start


def test_a_module_on_one_worker_goes_by_its_whole_time_and_keeps_its_written_order(record):
    shared = "tests/test_multiprocess.py"
    assert shared in scheduling.ONE_WORKER_MODULES
    scheduling.record_durations({f"{shared}::first": 1.0, f"{shared}::kills_a_process": 9.0, "a.py::slow": 8.0,
                                 "b.py::quick": 0.5})
    collected = items("a.py::slow", f"{shared}::first", "b.py::quick", f"{shared}::kills_a_process")
    scheduling.slowest_first(collected)
    assert [item.nodeid for item in collected] == [
        f"{shared}::first", f"{shared}::kills_a_process", "a.py::slow", "b.py::quick"]
