import numpy as np
import pytest
import torch
import torch.nn as nn

from brainsegcli.models import create_model, transfer_to_new_head
from brainsegcli.training.batchnorm import StackPool, recalibrate_batchnorm
from brainsegcli.types import BrainsegError


def _net():
    return nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.Dropout(0.5))


def test_recalibration_is_the_plain_average_over_batches():
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    net[1].running_mean.fill_(123.0)
    net.train()
    batches = [np.full((4, 1, 3, 3), v, np.float32) + np.arange(4, dtype=np.float32)[:, None, None, None]
               for v in (0.0, 10.0, 50.0)]
    n = recalibrate_batchnorm(net, batches, torch.from_numpy)
    assert n == 3
    # batch means 1.5, 11.5, 51.5 -> equal-weight average 21.5 (momentum 0.1 would give something else)
    assert torch.allclose(net[1].running_mean, torch.full((2,), 21.5))
    # unbiased variance of 0..3 repeated over 9 pixels: identical in every batch
    x = np.repeat(np.arange(4.0), 9)
    assert torch.allclose(net[1].running_var, torch.full((2,), float(x.var(ddof=1))), atol=1e-5)
    assert net[1].momentum == 0.1 and net.training and net[2].training  # modes and momentum restored


def test_recalibration_without_batches_changes_nothing():
    net = _net().eval()
    net[1].running_mean.fill_(3.0)
    assert recalibrate_batchnorm(net, [], torch.from_numpy) == 0
    assert torch.equal(net[1].running_mean, torch.full((2,), 3.0)) and not net.training


def test_stack_pool_keeps_the_latest_stacks():
    pool = StackPool(capacity=5, per_batch=2)
    for i in range(4):
        pool.offer(np.full((16, 5, 4, 4), i, np.uint8))
    assert len(pool) == 5
    got = sorted(int(b[j, 0, 0, 0]) for b in pool.batches(3, seed=0) for j in range(len(b)))
    assert got == [1, 2, 2, 3, 3]
    assert [len(b) for b in pool.batches(4, seed=0)] == [4]  # the lone fifth stack is left out
    pool.clear()
    assert len(pool) == 0 and list(pool.batches(3, 0)) == []


def test_transfer_to_new_head_keeps_everything_but_the_output_layer():
    torch.manual_seed(0)
    old = create_model("unet", in_channels=5, num_classes=4, features=(8, 16, 32))
    new = transfer_to_new_head(old, "unet", 5, 33, {"features": (8, 16, 32)})
    a, b = old.state_dict(), new.state_dict()
    changed = {k for k in a if a[k].shape != b[k].shape}
    assert changed == {"head.weight", "head.bias"} and b["head.weight"].shape[0] == 33
    assert all(torch.equal(a[k], b[k]) for k in a if k not in changed)
    with pytest.raises(BrainsegError, match="more than the output layer"):
        transfer_to_new_head(old, "unet", 5, 33, {"features": (8, 16, 32, 64)})
