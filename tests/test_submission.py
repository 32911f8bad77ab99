"""One submission type from the API to the engine, checked when built."""

from __future__ import annotations

import pytest

from tawan.core.precedence import Precedence
from tawan.core.specs import Submission, SubmitError


def test_a_submission_has_defaults_and_is_frozen() -> None:
    submission = Submission(7, b"order")
    assert (submission.precedence, submission.ttl, submission.receipt) == (
        Precedence.ROUTINE, 3600, False,
    )  # fmt: skip
    with pytest.raises(AttributeError):
        submission.ttl = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dst": 0}, "submission dst: expected an address 1..65535, found int 0"),
        ({"dst": "hq"}, "submission dst: expected an address 1..65535, found str 'hq'"),
        ({"payload": "text"}, "submission payload: expected bytes, found str 'text'"),
        ({"precedence": 3}, "submission precedence: expected a Precedence, found int 3"),
        ({"ttl": 0}, r"submission ttl: expected an integer >= 1 \(seconds\), found int 0"),
        ({"receipt": 1}, "submission receipt: expected a bool, found int 1"),
    ],
)
def test_a_bad_submission_names_the_field(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"dst": 7, "payload": b"x", **fields}
    with pytest.raises(SubmitError, match=message):
        Submission(**values)  # type: ignore[arg-type]
