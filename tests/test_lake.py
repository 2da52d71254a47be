"""How the lake's S3 answers are read: the conditional create's three outcomes (created, exists,
conflict). The answers are botocore's own ClientError, as boto3 raises them; what S3 servers really
answer is checked on the real servers in tests/test_stack.py and tests/test_operator_actions.py."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from loglake.body import Body
from loglake.errors import LakeRetriable
from loglake.lake import S3Store
from loglake.settings import LakeSettings


class Answers:
    """Stands in for the boto3 client's put_object: answers with the given S3 error codes in turn."""

    def __init__(self, *answers: tuple[int, str] | None) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def put_object(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        answer = self.answers.pop(0)
        if answer is None:
            return {}
        status, code = answer
        raise ClientError(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "PutObject",
        )


def store_answering(*answers: tuple[int, str] | None) -> tuple[S3Store, Answers]:
    store = S3Store(LakeSettings(endpoint_url="http://127.0.0.1:1"))
    client = Answers(*answers)
    store._s3 = client
    return store, client


def test_a_conditional_create_is_created_or_found_existing():
    store, client = store_answering(None, (412, "PreconditionFailed"))
    assert store.put_if_absent("k", Body(b"x")) is True
    assert store.put_if_absent("k", Body(b"x")) is False
    assert all(call["IfNoneMatch"] == "*" for call in client.calls)


@pytest.mark.parametrize("answer", [(409, "ConditionalRequestConflict"), (409, "OperationAborted")])
def test_a_conditional_create_that_conflicts_is_asked_again_not_taken_for_an_answer(answer):
    """AWS answers 409 while another conditional write of the key is under way: neither has won yet."""
    store, _client = store_answering(answer)
    with pytest.raises(LakeRetriable, match="409"):
        store.put_if_absent("k", Body(b"x"))
