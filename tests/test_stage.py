import threading

import pytest

from emolive.runtime.stage import Stage


class Doubler(Stage):
    def __init__(self, gate=None, **kw):
        super().__init__("doubler", **kw)
        self.gate = gate

    def process(self, item):
        if self.gate is not None:
            self.gate.wait()
        if item == "boom":
            raise RuntimeError("bad item")
        return [item * 2]


def test_inline_processing():
    assert Doubler().run_inline([1, 2, 3]) == [2, 4, 6]


def test_keep_latest_drops_oldest_and_counts():
    gate = threading.Event()
    s = Doubler(gate=gate, maxsize=2, keep_latest=True)
    out = []
    s.connect(out.append)
    s.start()
    s.put(0)  # taken by the thread, which waits on the gate
    while s._queue.qsize():
        pass
    for i in range(1, 6):
        s.put(i)
    gate.set()
    s.stop()
    assert s.join(5)
    assert out == [0, 8, 10]  # 1..3 were dropped for 4 and 5
    assert s.stats.dropped == 3 and s.stats.processed == 3


def test_failure_goes_to_the_scheduler_and_stops_the_stage():
    failures = []
    s = Doubler(on_failure=failures.append, maxsize=8)
    s.start()
    for item in (1, "boom", 3):
        s.put(item)
    assert s.join(5)
    assert len(failures) == 1 and "bad item" in str(failures[0])
    assert failures[0].stage == "doubler"
    assert s.put(4) is False  # a failed stage takes no more work


def test_put_wait_loses_nothing():
    s = Doubler(maxsize=1)
    out = []
    s.connect(out.append)
    s.start()
    for i in range(50):
        assert s.put_wait(i)
    s.stop()
    s.join(5)
    assert out == [2 * i for i in range(50)]


def test_bad_maxsize():
    with pytest.raises(ValueError, match="maxsize"):
        Doubler(maxsize=0)
