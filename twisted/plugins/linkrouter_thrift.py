"""
Dropin: the C{thrift} protocol and its response classifier.  Providers only.
"""

from protocols.thrift.plugin import thriftExceptionsClassifier, thriftProtocol

__all__ = ["thriftExceptionsClassifier", "thriftProtocol"]
