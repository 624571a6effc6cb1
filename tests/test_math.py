"Hand-derived gradients in `midl.math` against autograd and finite differences (float64)."
import pytest, torch
from midl.math import (dense_forward, dense_grads, dropout_dense_forward, dropout_dense_grads, topk_mask,
                       midl_params, midl_forward, midl_grads, MIDL_PARAM_NAMES)

def rand(*s, seed=0): return torch.randn(*s, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

def autograd(f, inputs, G):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    return torch.autograd.grad(f(*inputs), inputs, grad_outputs=G)

def test_dense_grads():
    x, W, b, G = rand(5, 4), rand(3, 4, seed=1), rand(3, seed=2), rand(5, 3, seed=3)
    ours = dense_grads(x, W, b, G)
    for k, a in zip('xWb', autograd(dense_forward, (x, W, b), G)): torch.testing.assert_close(ours[k], a)

def test_dropout_grads_zero_for_dropped_inputs():
    x, W, b, G = rand(5, 4), rand(3, 4, seed=1), rand(3, seed=2), rand(5, 3, seed=3)
    m = (rand(5, 4, seed=4) > 0).double()
    ours = dropout_dense_grads(x, W, b, m, G, scale=1 / 0.7)
    auto = autograd(lambda x, W, b: dropout_dense_forward(x, W, b, m, 1 / 0.7), (x, W, b), G)
    for k, a in zip('xWb', auto): torch.testing.assert_close(ours[k], a)
    assert (ours['x'][m == 0] == 0).all()

def test_topk_mask_exactly_k_even_with_ties():
    a = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.5, 0.5, 0.5, 0.5]])
    m = topk_mask(a, 2)
    assert m[0].tolist() == [0., 1., 0., 1.]
    assert m.sum(-1).tolist() == [2., 2.]

@pytest.mark.parametrize('ste', ['masked', 'identity'])
@pytest.mark.parametrize('with_drop', [False, True])
def test_midl_grads_match_autograd(ste, with_drop):
    B, d_in, d_out, k = 6, 5, 8, 3
    x, G, p = rand(B, d_in, seed=10), rand(B, d_out, seed=11), midl_params(d_in, d_out)
    drop = (rand(B, d_out, seed=5) > -0.5).double() / 0.9 if with_drop else None
    ours = midl_grads(x, *p.values(), k, G, drop=drop, ste=ste)
    auto = autograd(lambda x, *w: midl_forward(x, *w, k, drop=drop, ste=ste), (x, *p.values()), G)
    for name, a in zip(('x',) + MIDL_PARAM_NAMES, auto): torch.testing.assert_close(ours[name], a, rtol=1e-10, atol=1e-10)
    per_row = (ours['alpha'] != 0).sum(-1)
    if ste == 'masked': assert (per_row <= k).all() and (with_drop or (per_row == k).all())   # top-k entries only
    if ste == 'identity' and not with_drop: assert (per_row == d_out).all()

def test_masked_rule_is_the_true_derivative():
    p = midl_params(5, 8)
    xs = [t.clone().requires_grad_() for t in (rand(6, 5, seed=10), *p.values())]
    assert torch.autograd.gradcheck(lambda x, *w: midl_forward(x, *w, 3), xs)
    with pytest.raises(Exception, match='Jacobian mismatch'):
        torch.autograd.gradcheck(lambda x, *w: midl_forward(x, *w, 3, ste='identity'), xs)
