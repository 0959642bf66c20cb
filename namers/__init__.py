"""
Built-in namer, transformer and interpreter plugins: C{io.l5d.fs}
(L{namers.fs}), C{io.l5d.dnssrv} (L{namers.dnssrv}), the transformers
(L{namers.transformers}) and the interpreters (L{namers.interpreters}).
The dropin C{twisted/plugins/linkrouter_namers.py} registers them.
"""
