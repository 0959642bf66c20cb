"""
The suite runs on the reactor C{twistd linkrouter} runs on (see
L{linkrouter._reactor}), installed before any test module imports one.
"""

from linkrouter import _reactor

_reactor.install()
