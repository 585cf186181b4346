"""Fake vendor servers on 127.0.0.1 for adapter tests: real response shapes, real sample data,
scripted faults. See ``server.py`` for the fault injector and each vendor module for what it
serves.
"""

from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.covalent import FakeCovalent
from tests.fakes.kraken import FakeKraken
from tests.fakes.polygon import FakePolygon
from tests.fakes.server import FakeServer, Fault, FaultInjector, Recorded
from tests.fakes.yahoo import FakeYahoo

__all__ = [
    "FakeAlpaca",
    "FakeBinance",
    "FakeCoinbase",
    "FakeCovalent",
    "FakeKraken",
    "FakePolygon",
    "FakeServer",
    "FakeYahoo",
    "Fault",
    "FaultInjector",
    "Recorded",
]
