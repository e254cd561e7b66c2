"""API failures read as the server's own sentence (from its Status), whole words, never raw JSON."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from elastrain_operator.kube.client import MAX_QUOTED, KubeError, server_message, shorten

pytestmark = pytest.mark.unit

INVALID_POD = (
    'Pod "gpt-1b-head" is invalid: [spec.volumes[3].name: Duplicate value: "dshm", '
    'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/dev/shm": must be unique]'
)


def api_exception(status: int, reason: str, body: str) -> ApiException:
    err = ApiException(status=status, reason=reason)
    err.body = body
    return err


def test_a_status_body_is_quoted_by_its_message() -> None:
    body = json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": INVALID_POD, "reason": "Invalid"}
    )
    err = KubeError("create Pod gpt-1b-head", api_exception(422, "Unprocessable Entity", body))
    assert str(err) == f"create Pod gpt-1b-head failed: HTTP 422 Unprocessable Entity: {INVALID_POD}"
    assert err.status == 422
    assert "{" not in str(err)


def test_a_long_message_is_cut_between_words() -> None:
    words = " ".join(f"word{i}" for i in range(1000))
    said = server_message(json.dumps({"message": words}))
    assert len(said) <= MAX_QUOTED and said.endswith(" ...")
    assert said.removesuffix(" ...").split(" ")[-1] in words.split(" ")


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ("", "no message"),
        ("upstream connect error\n", "upstream connect error"),
        (b"gateway timeout", "gateway timeout"),
    ],
)
def test_a_body_that_is_not_a_status_is_quoted_on_one_line(body: str | bytes, want: str) -> None:
    assert server_message(body) == want


def test_shorten_leaves_short_text_alone() -> None:
    assert shorten("a  b\nc") == "a b c"
