"""Many real tawan engines in one process, over modelled bearers, through scripted faults."""
