"""Sends in doubt: a submission may carry the client's own reference, so that a retry of a
send whose answer was lost is answered with the first message's id and not sent twice."""

from __future__ import annotations

import pytest
import trio
from harness import Net, chain
from test_api import connected
from test_runtime import running_pair

from tawan.core.engine import Submission, SubmitError
from tawan.core.precedence import Precedence
from tawan.node.client import ClientError


def net() -> Net:
    n = Net({"a": [], "b": []}, chain("a", "b"), seed=4)
    n.run(3.0)
    return n


def submission(n: Net, payload: bytes, ref: bytes | None, ttl: int = 600) -> Submission:
    return Submission(n.address("b"), payload, Precedence.PRIORITY, ttl, ref=ref)


def test_a_retry_with_the_same_ref_gets_the_same_id_and_one_delivery() -> None:
    n = net()
    first = n.engines["a"].submit(submission(n, b"report 1", b"client-7/1"), n.now)
    # the answer is lost on its way to the client, which sends again
    again = n.engines["a"].submit(submission(n, b"report 1", b"client-7/1"), n.now)
    n.run(10.0)
    assert again == first
    assert [e.mid for e in n.delivered("b")] == [first]


def test_the_ref_is_durable_with_the_message() -> None:
    n = net()
    a = n.engines["a"]
    first = a.submit(submission(n, b"report", b"r1"), n.now)
    a.commit()
    n.crash("a")
    assert n.engines["a"].submit(submission(n, b"report", b"r1"), n.now) == first
    n.run(10.0)
    assert [e.mid for e in n.delivered("b")] == [first]


def test_the_same_ref_for_another_submission_is_a_clear_error() -> None:
    n = net()
    a = n.engines["a"]
    first = a.submit(submission(n, b"report", b"r1"), n.now)
    with pytest.raises(SubmitError, match=r"ref b'r1': already used for message .*different"):
        a.submit(submission(n, b"another report", b"r1"), n.now)
    other = a.submit(submission(n, b"report", b"r2"), n.now)  # another ref: another message
    plain = a.submit(submission(n, b"report", None), n.now)
    assert len({first, other, plain}) == 3


def test_a_ref_expires_with_its_message() -> None:
    n = net()
    a = n.engines["a"]
    first = a.submit(submission(n, b"short", b"r1", ttl=5), n.now)
    n.run(30.0)  # expired (and housekeeping forgot the ref)
    assert n.engines["a"].submit(submission(n, b"short", b"r1", ttl=5), n.now) != first


@pytest.mark.parametrize("ref", [b"", bytes(65), "text"])
def test_a_bad_ref_is_refused_when_the_submission_is_built(ref: object) -> None:
    with pytest.raises(SubmitError, match=r"submission ref: expected None or 1\.\.64 bytes"):
        Submission(1, b"x", ref=ref)  # type: ignore[arg-type]


async def test_the_api_and_the_client_carry_the_ref(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair, connected(pair.alpha) as alpha:
        first = await alpha.send("bravo", b"sitrep", ref="op-42")
        assert await alpha.send("bravo", b"sitrep", ref="op-42") == first
        with pytest.raises(ClientError, match=r"send: ref b'op-42': already used"):
            await alpha.send("bravo", b"other sitrep", ref="op-42")
        with pytest.raises(ClientError, match=r"send\.ref: expected text of 1\.\.64 bytes"):
            await alpha.send("bravo", b"x", ref="")
        with trio.fail_after(30):
            while pair.bravo.store.inbox_count() < 1:
                await pair.bravo.inbox_changed.wait()
        await trio.sleep(5)
        assert [e.mid for e in pair.bravo.store.inbox(0, 10)] == [
            tuple(int(p) for p in first.split("."))
        ]
