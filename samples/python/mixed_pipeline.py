"""One network, two languages: a Python producer feeds a pipeline of eight
C++ fibers (cspp_pipeline, pipeline_module.cpp), drained by a Python consumer.
The channels are made in C++ (64-bit integers) and used from both sides;
retire passes from the producer through every C++ stage to the consumer.

Prints: sum of 2*i for i in 0..999, through C++ fibers: 999000
"""
from cspp.pycsp import *

import cspp_pipeline


@process
def producer(cout, n):
    for i in range(n):
        cout(i)
    retire(cout)


@process
def consumer(cin):
    total = 0
    try:
        while True:
            total += cin()
    except ChannelRetireException:
        return total


into, out = cspp_pipeline.numbers("into C++"), cspp_pipeline.numbers("out of C++")
total = Parallel(producer(-into, 1000), cspp_pipeline.pipeline(+into, -out, stages=8), consumer(+out))[-1]
print("sum of 2*i for i in 0..999, through C++ fibers:", total)
