"""Agent train specs at submit, on both databases: defaults filled in, budgets refused with coded errors naming
the field, the policy's size and memory checked against the tenant's budgets, a policy's options kept apart
from a dataset's."""

from __future__ import annotations

import pytest

AGENT = {"architecture": "policy", "environment": {"name": "CartPole-v1"}}


def _submit(client, auth, spec: dict, **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"type": "train", "spec": spec, **extra}, headers=auth)


def test_an_agent_is_queued_with_its_budgets_and_params_filled_in(client, auth, publisher) -> None:
    answer = _submit(client, auth, AGENT)
    assert answer.status_code == 202, answer.get_json()
    spec = answer.get_json()["spec"]
    assert spec["environment"] == {
        "name": "CartPole-v1",
        "max_steps": 200_000,
        "max_episodes": 20_000,
        "max_seconds": 600.0,
        "eval_episodes": 100,
    }
    assert spec["params"] == {}  # kept as given; the worker reads the defaults from ml.specs.PolicyParams
    assert "dataset" not in spec
    assert publisher.published == [answer.get_json()["id"]]


@pytest.mark.parametrize(
    ("environment", "field"),
    [
        ({"max_steps": 10**9}, "spec.environment.max_steps"),
        ({"max_steps": 1}, "spec.environment.max_steps"),
        ({"max_episodes": 0}, "spec.environment.max_episodes"),
        ({"max_seconds": 0}, "spec.environment.max_seconds"),
        ({"max_seconds": 10**6}, "spec.environment.max_seconds"),
        ({"eval_episodes": 10**4}, "spec.environment.eval_episodes"),
    ],
)
def test_budgets_out_of_range_are_422_naming_the_field(client, auth, environment: dict, field: str) -> None:
    spec = {**AGENT, "environment": {"name": "CartPole-v1", **environment}}
    error = _submit(client, auth, spec).get_json()["error"]
    assert error["code"] == "out_of_range"
    assert [d["field"] for d in error["details"]] == [field]


def test_a_wall_time_budget_over_the_jobs_timeout_is_422(client, auth) -> None:
    spec = {**AGENT, "environment": {"name": "CartPole-v1", "max_seconds": 120}}
    refused = _submit(client, auth, spec, timeout_s=60)
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "budget_over_timeout"
    assert error["details"] == {"field": "spec.environment.max_seconds", "limit": 60}
    assert _submit(client, auth, spec, timeout_s=120).status_code == 202


def test_a_policy_over_the_size_or_memory_budget_is_422_unless_the_tenant_may(client, auth, settings) -> None:
    wide = {**AGENT, "params": {"hidden": [1024] * 8}}  # about 15 million weights, policy and critic
    settings.tenant_quotas = {"acme": {"max_model_params": 1_000_000}}
    refused = _submit(client, auth, wide)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "model_too_large"
    settings.tenant_quotas = {"acme": {"max_job_memory_mb": 64}}
    refused = _submit(client, auth, wide)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "memory_budget_exceeded"
    settings.tenant_quotas = {}
    assert _submit(client, auth, wide).status_code == 202


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({**AGENT, "environment": {"name": "Pong-v5"}}, 400),
        ({**AGENT, "dataset": "builtin:iris"}, 400),
        ({"architecture": "policy"}, 400),
        ({"architecture": "mlp", "environment": {"name": "CartPole-v1"}}, 400),
        ({"architecture": "mlp"}, 400),
        ({**AGENT, "early_stopping": {"patience": 2, "monitor": "loss"}}, 400),
        ({**AGENT, "params": {"num_envs": 0}}, 422),
        ({**AGENT, "params": {"layers": 3}}, 400),
    ],
)
def test_specs_that_mix_a_policy_and_a_dataset_are_refused(client, auth, spec: dict, status: int) -> None:
    answer = _submit(client, auth, spec)
    assert answer.status_code == status, answer.get_json()
