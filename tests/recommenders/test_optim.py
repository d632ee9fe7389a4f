"""mmwork's Adam follows torch.optim.Adam step for step."""
import pytest
import torch

from mmwork.models.recommenders.optim import Adam


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "written-out"])
def test_adam_matches_torch_optim_adam(fused):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(6, 4, generator=gen), torch.randn(4, generator=gen)]
    target = torch.randn(6, generator=gen)
    mine = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    adam = Adam(mine, lr=0.05, weight_decay=0.01, fused=fused)
    assert adam.fused is fused
    reference = torch.optim.Adam(theirs, lr=0.05, weight_decay=0.01)
    for _ in range(25):
        for params, optimizer in ((mine, adam), (theirs, reference)):
            optimizer.zero_grad()
            ((params[0] @ params[1] - target) ** 2).mean().backward()
            optimizer.step()
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(mine[0], start[0])  # it did move
