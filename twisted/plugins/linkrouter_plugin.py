"""
The C{twistd linkrouter} service maker.  No logic and no I/O here: Twisted
imports every dropin when it rebuilds its plugin cache.
"""

from twisted.application.service import ServiceMaker

linkrouter = ServiceMaker(
    "linkrouter",
    "linkrouter.tap",
    "A Linkerd 1.x compatible RPC router and service-mesh proxy",
    "linkrouter",
)
