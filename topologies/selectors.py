"""What a traffic entry's `sources` and `to` name, resolved against a scenario's nodes.

Sources: "all", "role:ROLE", "group:NAME" or a node name. Destinations: "parent",
"children", "own-group", "group:NAME" or a node name. The loader uses these to reject a
selector that names nothing; the emulator to expand traffic into messages.
"""

from __future__ import annotations

from collections.abc import Iterable

from topologies.scenario import Node, Scenario

RELATIVE_DESTINATIONS = ("parent", "children", "own-group")


def selected(scenario: Scenario, selector: str) -> tuple[str, ...]:
    """The names of the nodes `selector` picks, in file order; empty if it names nothing."""
    if selector == "all":
        return tuple(node.name for node in scenario.nodes)
    kind, _, value = selector.partition(":")
    if kind == "role" and value:
        return tuple(node.name for node in scenario.nodes if node.role == value)
    if kind == "group" and value:
        return tuple(node.name for node in scenario.nodes if value in node.groups)
    return tuple(node.name for node in scenario.nodes if node.name == selector)


def sources_of(scenario: Scenario, selectors: Iterable[str]) -> tuple[str, ...]:
    """Every node any of `selectors` picks, once each, in file order."""
    wanted = {name for selector in selectors for name in selected(scenario, selector)}
    return tuple(node.name for node in scenario.nodes if node.name in wanted)


def children_of(scenario: Scenario, name: str) -> tuple[str, ...]:
    """The nodes whose parent is `name`, in file order."""
    return tuple(node.name for node in scenario.nodes if node.parent == name)


def group_members(scenario: Scenario, group: str) -> tuple[str, ...]:
    return tuple(node.name for node in scenario.nodes if group in node.groups)


def destinations(scenario: Scenario, source: Node, to: str) -> tuple[tuple[str, ...], ...]:
    """The messages one send from `source` to `to` makes: each a tuple of receivers.

    "children" is one message per child; a group is one message to every member but the
    source; "parent" from a node without one, or "own-group" from a node in no group, is
    no message at all."""
    if to == "parent":
        return ((source.parent,),) if source.parent else ()
    if to == "children":
        return tuple((child,) for child in children_of(scenario, source.name))
    if to == "own-group" or to.startswith("group:"):
        group = (source.groups[:1] or ("",))[0] if to == "own-group" else to[len("group:") :]
        members = tuple(m for m in group_members(scenario, group) if m != source.name)
        return (members,) if group and members else ()
    return ((to,),) if to != source.name else ()
