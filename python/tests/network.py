"""Processes the Python tests share: a producer that writes its values and
retires, a collector that returns what it read once its channel retires."""
from cspp import ChannelRetireException, process, retire


@process
def produce(cout, values):
    for v in values:
        cout(v)
    retire(cout)


@process
def collect(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except ChannelRetireException:
        return got
