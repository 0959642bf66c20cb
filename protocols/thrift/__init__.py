"""
The C{thrift} protocol: Apache Thrift RPC over TCP, framed or buffered,
binary or compact, with Finagle's TTwitter upgrade.

 - L{protocols.thrift.codec}: message boundaries, headers, skipping,
   synthesised exception replies, small struct reader and writer.
 - L{protocols.thrift.ttwitter}: the TTwitter upgrade and its header structs.
 - L{protocols.thrift.server}: inbound connections, identification, ordered
   replies.
 - L{protocols.thrift.identifier}: the call type and how calls are named.
 - L{protocols.thrift.client}: a per-endpoint pool of serial connections.
 - L{protocols.thrift.router}: the router service built from a configuration.
 - L{protocols.thrift.plugin}: configuration parsing, the protocol and
   classifier plugins.
"""
