"""tawan: a store-and-forward tactical messaging node.

`tawan.engine` is the protocol as a state machine without I/O; `tawan.runtime` drives it over
real links with trio; `tawan.daemon` and `tawan.cli` are what an operator runs.
"""

__version__ = "0.1.0"
