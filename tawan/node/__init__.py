"""The tawan node as a process: the trio runtime around the core engine, real links, the
local API, metrics, the configuration file and the daemon (`tawan node run`)."""
