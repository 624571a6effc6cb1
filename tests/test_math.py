"Hand-derived gradients in `midl.math` against autograd (float64); nbs/00_math.ipynb holds the other checks."
import pytest, torch
from midl.math import dropout_dense_forward, dropout_dense_grads, midl_params, midl_forward, midl_grads, MIDL_PARAM_NAMES

def rand(*s, seed=0): return torch.randn(*s, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

def autograd(f, inputs, G):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    return torch.autograd.grad(f(*inputs), inputs, grad_outputs=G)

def test_dropout_grads_zero_for_dropped_inputs():
    x, W, b, G = rand(5, 4), rand(3, 4, seed=1), rand(3, seed=2), rand(5, 3, seed=3)
    m = (rand(5, 4, seed=4) > 0).double()
    ours = dropout_dense_grads(x, W, b, m, G, scale=1 / 0.7)
    auto = autograd(lambda x, W, b: dropout_dense_forward(x, W, b, m, 1 / 0.7), (x, W, b), G)
    for k, a in zip('xWb', auto): torch.testing.assert_close(ours[k], a)
    assert (ours['x'][m == 0] == 0).all()

@pytest.mark.parametrize('ste', ['masked', 'identity'])
def test_midl_grads_with_alpha_dropout_match_autograd(ste):         # without dropout: the checks in nbs/00_math.ipynb
    B, d_in, d_out, k = 6, 5, 8, 3
    x, G, p = rand(B, d_in, seed=10), rand(B, d_out, seed=11), midl_params(d_in, d_out)
    drop = (rand(B, d_out, seed=5) > -0.5).double() / 0.9
    ours = midl_grads(x, *p.values(), k, G, drop=drop, ste=ste)
    auto = autograd(lambda x, *w: midl_forward(x, *w, k, drop=drop, ste=ste), (x, *p.values()), G)
    for name, a in zip(('x',) + MIDL_PARAM_NAMES, auto): torch.testing.assert_close(ours[name], a, rtol=1e-10, atol=1e-10)
    per_row = (ours['alpha'] != 0).sum(-1)
    if ste == 'masked': assert (per_row <= k).all()                  # top-k entries only (fewer where dropout hit)
