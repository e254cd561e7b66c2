"""Operator settings from the environment, and the leader-election decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from elastrain_operator.reconcile.leadership import may_lead
from elastrain_operator.settings import OperatorSettings, SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_from_an_empty_environment() -> None:
    assert load_settings({}) == OperatorSettings(
        namespaces=(),
        metrics_port=8080,
        liveness_port=8081,
        resync_seconds=2.0,
        watch_seconds=300,
        create_concurrency=16,
        leader_election=True,
        lease_name="elastrain-operator",
        lease_namespace="default",
        lease_seconds=15,
    )


def test_empty_values_mean_defaults() -> None:
    env = {
        "ELASTRAIN_NAMESPACES": "",
        "ELASTRAIN_METRICS_PORT": "",
        "ELASTRAIN_LIVENESS_PORT": "",
        "ELASTRAIN_RESYNC_SECONDS": "",
        "ELASTRAIN_WATCH_SECONDS": "",
        "ELASTRAIN_CREATE_CONCURRENCY": "",
        "ELASTRAIN_LEADER_ELECTION": " ",
        "ELASTRAIN_LEASE_NAME": "",
        "ELASTRAIN_LEASE_NAMESPACE": "",
        "ELASTRAIN_LEASE_SECONDS": "",
    }
    assert load_settings(env) == OperatorSettings()


def test_every_setting_is_read() -> None:
    env = {
        "ELASTRAIN_NAMESPACES": " team-a, team-b ,,",
        "ELASTRAIN_METRICS_PORT": "9090",
        "ELASTRAIN_LIVENESS_PORT": "0",
        "ELASTRAIN_RESYNC_SECONDS": "0.5",
        "ELASTRAIN_WATCH_SECONDS": "60",
        "ELASTRAIN_CREATE_CONCURRENCY": "16",
        "ELASTRAIN_LEADER_ELECTION": "false",
        "ELASTRAIN_LEASE_NAME": "my-lease",
        "ELASTRAIN_LEASE_NAMESPACE": "elastrain-system",
        "ELASTRAIN_LEASE_SECONDS": "30",
        "UNRELATED": "1",
    }
    assert load_settings(env) == OperatorSettings(
        namespaces=("team-a", "team-b"),
        metrics_port=9090,
        liveness_port=0,
        resync_seconds=0.5,
        watch_seconds=60,
        create_concurrency=16,
        leader_election=False,
        lease_name="my-lease",
        lease_namespace="elastrain-system",
        lease_seconds=30,
    )


def test_metrics_port_zero_disables_metrics() -> None:
    assert load_settings({"ELASTRAIN_METRICS_PORT": "0"}).metrics_port == 0


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_spellings(raw: str, want: bool) -> None:
    assert load_settings({"ELASTRAIN_LEADER_ELECTION": raw}).leader_election is want


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("ELASTRAIN_METRICS_PORT", "http", "is not an integer"),
        ("ELASTRAIN_METRICS_PORT", "-1", "out of range; set it to a whole number from 0 to 65535"),
        ("ELASTRAIN_METRICS_PORT", "99999", "out of range; set it to a whole number from 0 to 65535"),
        ("ELASTRAIN_METRICS_PORT", "80.5", "is not an integer"),
        ("ELASTRAIN_LIVENESS_PORT", "-8081", "out of range"),
        ("ELASTRAIN_LIVENESS_PORT", "65536", "out of range"),
        ("ELASTRAIN_LEASE_SECONDS", "1", "out of range; set it to a whole number >= 2"),
        ("ELASTRAIN_LEASE_SECONDS", "0", "out of range"),
        ("ELASTRAIN_NAMESPACES", "team-a,Team_B", "names 'Team_B', which is not a namespace name"),
        ("ELASTRAIN_LEASE_NAME", "My Lease", "is not a valid Lease name"),
        ("ELASTRAIN_LEASE_NAMESPACE", "elastrain.system", "is not a valid namespace name"),
        ("ELASTRAIN_RESYNC_SECONDS", "soon", "is not a number"),
        ("ELASTRAIN_WATCH_SECONDS", "5", "out of range"),
        ("ELASTRAIN_CREATE_CONCURRENCY", "0", "out of range"),
        ("ELASTRAIN_RESYNC_SECONDS", "0", "must be a positive"),
        ("ELASTRAIN_RESYNC_SECONDS", "-3", "must be a positive"),
        ("ELASTRAIN_RESYNC_SECONDS", "nan", "must be a positive"),
        ("ELASTRAIN_RESYNC_SECONDS", "inf", "must be a positive"),
        ("ELASTRAIN_LEADER_ELECTION", "maybe", "is not a boolean"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: raw})
    assert str(raised.value).startswith(name)
    assert says in str(raised.value)


def test_metrics_and_liveness_ports_must_differ() -> None:
    with pytest.raises(SettingsError, match="ELASTRAIN_METRICS_PORT and ELASTRAIN_LIVENESS_PORT are both 9000"):
        load_settings({"ELASTRAIN_METRICS_PORT": "9000", "ELASTRAIN_LIVENESS_PORT": "9000"})
    assert load_settings({"ELASTRAIN_METRICS_PORT": "0", "ELASTRAIN_LIVENESS_PORT": "0"}).liveness_port == 0


def test_highest_port_and_a_dotted_lease_name_are_accepted() -> None:
    settings = load_settings({"ELASTRAIN_METRICS_PORT": "65535", "ELASTRAIN_LEASE_NAME": "ops.elastrain-lease"})
    assert (settings.metrics_port, settings.lease_name) == (65535, "ops.elastrain-lease")


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTRAIN_LEASE_NAME", "from-process-env")
    assert load_settings().lease_name == "from-process-env"


# -- leadership -------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("holder", "renewed", "now", "want"),
    [
        (None, None, T0, True),
        ("", T0, T0, True),
        ("me", T0, T0, True),
        ("me", T0, T0 + timedelta(hours=1), True),
        ("other", T0, T0, False),
        ("other", T0, T0 + timedelta(seconds=14), False),
        ("other", T0, T0 + timedelta(seconds=15), True),
        ("other", T0, T0 + timedelta(minutes=5), True),
        ("other", None, T0, True),
    ],
    ids=[
        "unheld",
        "empty-holder",
        "ours",
        "ours-even-if-stale",
        "other-just-renewed",
        "other-within-duration",
        "other-expired-exactly",
        "other-long-gone",
        "other-never-renewed",
    ],
)
def test_may_lead(holder: str | None, renewed: datetime | None, now: datetime, want: bool) -> None:
    assert may_lead(holder=holder, renewed=renewed, duration_seconds=15, identity="me", now=now) is want
