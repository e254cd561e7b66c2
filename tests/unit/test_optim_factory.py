"""Optimizers built from every OptimizerConfig value, and LAMB against a per-tensor reference."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from elastrain_trainer.config.optim import OptimizerConfig, OptimizerName
from elastrain_trainer.optim import RMSPROP_ALPHA, Lamb, build_optimizer

EXPECTED: dict[OptimizerName, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adamw": (torch.optim.AdamW, {"lr": 0.5, "betas": (0.8, 0.9), "eps": 1e-5, "weight_decay": 0.1}),
    "adam": (torch.optim.Adam, {"lr": 0.5, "betas": (0.8, 0.9), "eps": 1e-5, "weight_decay": 0.1}),
    "lamb": (Lamb, {"lr": 0.5, "betas": (0.8, 0.9), "eps": 1e-5, "weight_decay": 0.1}),
    "sgd": (torch.optim.SGD, {"lr": 0.5, "momentum": 0.7, "nesterov": False, "weight_decay": 0.1}),
    "adagrad": (torch.optim.Adagrad, {"lr": 0.5, "eps": 1e-5, "weight_decay": 0.1}),
    "rmsprop": (
        torch.optim.RMSprop,
        {"lr": 0.5, "alpha": RMSPROP_ALPHA, "eps": 1e-5, "momentum": 0.7, "weight_decay": 0.1},
    ),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_name_builds_its_optimizer_with_the_config_values(name: OptimizerName) -> None:
    cfg = OptimizerConfig(name=name, lr=0.5, betas=[0.8, 0.9], eps=1e-5, weight_decay=0.1, momentum=0.7)
    optimizer = build_optimizer([torch.nn.Parameter(torch.ones(3))], cfg)
    cls, values = EXPECTED[name]
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert {key: group[key] for key in values} == values


def test_sgd_nesterov_is_passed_through() -> None:
    cfg = OptimizerConfig(name="sgd", momentum=0.9, nesterov=True)
    group = build_optimizer([torch.nn.Parameter(torch.ones(3))], cfg).param_groups[0]
    assert group["nesterov"] is True
    assert group["momentum"] == 0.9


def test_param_groups_keep_their_own_options() -> None:
    weights, biases = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(1))
    groups = [{"params": [weights]}, {"params": [biases], "weight_decay": 0.0}]
    optimizer = build_optimizer(groups, OptimizerConfig(name="lamb", weight_decay=0.05))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]


def _reference_lamb(
    params: list[torch.Tensor], grads_per_step: list[list[torch.Tensor]], *, lr: float, wd: float
) -> list[torch.Tensor]:
    """LAMB written from the paper, one tensor at a time, no foreach kernels."""
    beta1, beta2, eps = 0.9, 0.95, 1e-8
    weights = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            update = (m[i] / (1 - beta1**t)) / ((v[i] / (1 - beta2**t)).sqrt() + eps) + wd * weights[i]
            w_norm, u_norm = weights[i].norm(), update.norm()
            trust = w_norm / u_norm if w_norm > 0 and u_norm > 0 else torch.tensor(1.0)
            weights[i] = weights[i] - lr * trust * update
    return weights


def test_lamb_matches_the_per_tensor_reference() -> None:
    torch.manual_seed(0)
    # The zero tensor exercises the trust ratio's fallback to 1.
    params = [torch.randn(4, 3), torch.randn(5), torch.zeros(2)]
    grads_per_step = [[torch.randn_like(p) for p in params] for _ in range(5)]
    expected = _reference_lamb(params, grads_per_step, lr=0.01, wd=0.1)

    live = [torch.nn.Parameter(p.clone()) for p in params]
    optimizer = build_optimizer(live, OptimizerConfig(name="lamb", lr=0.01, weight_decay=0.1, betas=[0.9, 0.95]))
    for grads in grads_per_step:
        for p, g in zip(live, grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
    for got, want in zip(live, expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
    # The layer-wise trust ratio is what distinguishes LAMB from Adam: a plain AdamW step differs.
    adam = [torch.nn.Parameter(p.clone()) for p in params]
    adamw = torch.optim.AdamW(adam, lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    for grads in grads_per_step:
        for p, g in zip(adam, grads, strict=True):
            p.grad = g.clone()
        adamw.step()
    assert not torch.allclose(adam[0].detach(), expected[0], rtol=1e-3)


def test_lamb_rejects_bad_hyperparameters_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"Lamb betas must lie in \[0, 1\), got \(0.9, 1.0\)"):
        Lamb([torch.nn.Parameter(torch.ones(1))], betas=(0.9, 1.0))
