"""PyCSP's names on cspp: a PyCSP program runs by changing its import line to

    from cspp.pycsp import *
"""
from cspp import *  # noqa: F401,F403
from cspp import __all__  # noqa: F401
