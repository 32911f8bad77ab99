"""The router mends its graph where an advert changed it instead of building it again, and
computes routes again only when an edge changed: after any sequence of updates, every
answer it gives is the one a router built afresh from the same knowledge gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tawan.core.routing import Router

NODES = range(6)
ME = 0

costs = st.integers(min_value=1, max_value=2)  # few costs: many ties to break
views = st.dictionaries(st.sampled_from(NODES), costs, max_size=4)
plans = st.dictionaries(st.sampled_from(NODES), views, max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advert"), st.sampled_from(NODES[1:]), views),
        st.tuples(st.just("expire"), st.integers(0, 20), st.just({})),
        st.tuples(st.just("forget"), st.sampled_from(NODES[1:]), st.just({})),
        st.tuples(st.just("local"), st.just(0), views),
        st.tuples(st.just("publish"), st.just(0), views),
        st.tuples(st.just("ask"), st.just(0), st.just({})),
    ),
    max_size=25,
)


def answers(router: Router) -> tuple[object, ...]:
    return (
        router.graph(),
        router.shared_graph(),
        router.own_tree(),
        {src: router.tree(src) for src in NODES},
        {dst: router.next_hop(dst) for dst in NODES},
        router.reached(),
    )


def afresh(router: Router) -> Router:
    fresh = Router(ME, planned=router.planned)
    fresh.adverts = dict(router.adverts)
    fresh.my_adjacency = dict(router.my_adjacency)
    fresh.published = None if router.published is None else dict(router.published)
    return fresh


@settings(max_examples=300, deadline=None)
@given(plans, operations)
def test_every_answer_is_that_of_a_router_built_afresh(
    plan: dict[int, dict[int, int]], ops: list[tuple[str, int, dict[int, int]]]
) -> None:
    router = Router(ME, planned=plan)
    seq = 0
    for step, (kind, node, view) in enumerate(ops):
        if kind == "advert":
            seq += 1
            router.update_advert(node, seq, view.items(), float(step))
        elif kind == "expire":
            router.expire_adverts(float(node))
        elif kind == "forget":
            router.forget(node)
        elif kind == "local":
            router.update_local({n: c for n, c in view.items() if n != ME})
        elif kind == "publish":
            router.publish(view)
        else:
            answers(router)  # the caches filled, to be mended by what follows
        assert answers(router) == answers(afresh(router)), f"after step {step}: {kind}"


def test_a_refresh_that_says_what_the_last_advert_said_computes_no_route_again() -> None:
    router = Router(ME, planned={1: {0: 1, 2: 1}, 2: {1: 1}})
    router.update_local({1: 1})
    router.update_advert(2, 1, [(1, 3)], 0.0)
    tree = router.tree(2)
    assert router.update_advert(2, 2, [(1, 3)], 30.0)  # newer: flooded on all the same
    assert router.tree(2) is tree


def test_a_new_edge_that_ties_takes_the_parent_the_tie_break_prefers() -> None:
    """0 reaches 3 through 2 (two hops of cost 1); an advert of 1 adds 1-3 at cost 1: a
    path as short, through a node lower in (distance, address), which every router built
    afresh would take. The tree held must not survive it."""
    router = Router(0, planned={1: {0: 1}, 2: {0: 1, 3: 1}, 3: {1: 1, 2: 1}})
    router.update_local({1: 1, 2: 1})
    assert router.own_tree()[3] == 2
    router.update_advert(1, 1, [(0, 1), (3, 1)], 0.0)
    assert router.own_tree()[3] == 1
    assert router.own_tree() == afresh(router).own_tree()
