"""tawan: a store-and-forward tactical messaging node.

`tawan.core` is the protocol as a state machine without I/O (`tawan.core.engine.Engine`);
`tawan.node` drives it over real links with trio (`tawan.node.runtime`) and runs it as a
daemon; `tawan.cli` is what an operator types.
"""

__version__ = "0.1.0"
