"""Links: how a node puts frames on a bearer. A leaf package: it knows nothing of the node.

Nothing is imported here: `transports.profile` (bearer numbers) and `transports.model` (the
sans-I/O bearer model) load without trio, so the protocol core can use them; the trio links
are in `transports.link`, `transports.udp`, `transports.tcp`, `transports.kisslink` and
`transports.memory`. The KISS framer (`transports.kiss`) and AX.25 UI frames
(`transports.ax25`) are sans-I/O too.
"""
