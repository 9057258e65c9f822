"""grad_norm is logged without clipping too: the gradients' total norm, left unclipped."""

import torch
from torch import nn

from engine import OptimWrapper


def test_unclipped_updates_report_the_norm_and_leave_the_gradients_alone():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    reference = nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    plain = torch.optim.SGD(reference.parameters(), lr=0.1)
    x = torch.randn(4, 3) * 10  # large gradients: clipping, were it on, would show
    ow.update_params(model(x).pow(2).sum())
    loss = reference(x).pow(2).sum()
    loss.backward()
    expected = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in reference.parameters()])
    )
    plain.step()
    assert isinstance(ow.last_grad_norm, torch.Tensor)
    assert torch.allclose(ow.last_grad_norm, expected, rtol=1e-5)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # the same update as plain SGD: nothing clipped
