"""The protocol core of a tawan node, without I/O: no sockets, threads, trio or clock.

`tawan.core.engine.Engine` is driven from three sides (the application, the network, a
timer) in the shape of aioquic's `QuicConnection`; everything it needs is injected, so the
trio runtime (`tawan.node`) and the emulator's event heap step the same object. Importing
this package loads neither trio nor socket (tests/test_core_imports.py).
"""
