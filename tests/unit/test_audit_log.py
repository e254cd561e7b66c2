"""Reading the local API server's audit log: who asked what of which resource, and the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from elastrain_dev.audit import AUDIT_POLICY, Request, audit_args, read_requests

pytestmark = pytest.mark.unit

SA = "system:serviceaccount:ops:ops-elastrain"


def entry(user: str, verb: str, ref: dict[str, str] | None, code: int = 200, audit_id: str | None = None) -> str:
    event: dict[str, object] = {
        "kind": "Event",
        "user": {"username": user},
        "verb": verb,
        "responseStatus": {"code": code},
    }
    if audit_id is not None:
        event["auditID"] = audit_id
    if ref is not None:
        event["objectRef"] = ref
    return json.dumps(event)


def test_requests_of_one_user_with_subresources(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    lines = [
        entry(SA, "patch", {"apiGroup": "elastrain.dev", "resource": "trainingjobs", "subresource": "status"}),
        entry(SA, "watch", {"resource": "pods"}),
        entry("system:serviceaccount:other:x", "get", {"resource": "secrets", "namespace": "ml"}),
        entry(SA, "get", None),  # a non-resource URL (/version)
        entry(SA, "create", {"resource": "secrets", "namespace": "ml"}, code=403),
    ]
    log.write_text("\n".join(lines) + "\n")
    assert list(read_requests(log, user=SA)) == [
        Request(SA, "patch", "elastrain.dev", "trainingjobs/status", "", 200),
        Request(SA, "watch", "", "pods", "", 200),
        Request(SA, "create", "", "secrets", "ml", 403),
    ]
    assert len(list(read_requests(log))) == 4
    assert list(read_requests(tmp_path / "absent.log")) == []


def test_a_watchs_started_and_complete_entries_are_one_request(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    watch = {"resource": "pods"}
    lines = [
        entry(SA, "watch", watch, audit_id="a"),  # ResponseStarted
        entry(SA, "list", watch, audit_id="b"),
        entry(SA, "watch", watch, audit_id="a"),  # ResponseComplete, when the watch ends
        entry(SA, "watch", watch, audit_id="c"),  # a watch still open: only its start is logged
    ]
    log.write_text("\n".join(lines) + "\n")
    assert [r.verb for r in read_requests(log, user=SA)] == ["watch", "list", "watch"]


def test_the_policy_logs_service_accounts_outside_kube_system_only(tmp_path: Path) -> None:
    args = audit_args(tmp_path / "policy.yaml", tmp_path / "audit.log")
    assert f"--audit-policy-file={tmp_path / 'policy.yaml'}" in args and "--audit-log-format=json" in args
    policy = yaml.safe_load((tmp_path / "policy.yaml").read_text())
    assert policy == yaml.safe_load(AUDIT_POLICY)
    levels = [(r["level"], r.get("userGroups")) for r in policy["rules"]]
    assert levels == [
        ("None", ["system:serviceaccounts:kube-system"]),
        ("Metadata", ["system:serviceaccounts"]),
        ("None", None),
    ]
