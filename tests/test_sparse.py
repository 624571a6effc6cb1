"SparseMIDLayer against its dense reference over a grid of shapes, and its FLOPs against a dense layer."
import pytest, torch
from torch.utils.flop_counter import FlopCounterMode
from midl.sparse import SparseMIDLayer

@pytest.mark.parametrize('d_in,d_out,k,rank,bias', [(8, 8, 1, 1, True), (24, 10, 0.5, 3, False), (10, 40, 40, 4, True), (33, 17, 0.3, 8, True)])
def test_sparse_path_equals_dense_reference(d_in, d_out, k, rank, bias):
    torch.manual_seed(0)
    lay = SparseMIDLayer(d_in, k, out_dim=d_out, rank=rank, bias=bias, alpha_dropout=0.2).double().train()
    x = torch.randn(2, 5, d_in, dtype=torch.float64)
    out = {}
    for name, fn in [('sparse', lay), ('dense', lay.forward_dense)]:
        lay.zero_grad(); xx = x.clone().requires_grad_()
        torch.manual_seed(1); y = fn(xx); (y * y.detach().sign()).sum().backward()
        out[name] = [y, xx.grad] + [p.grad.clone() for p in lay.parameters()]
    for a, b in zip(out['sparse'], out['dense']): torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    w = out['sparse'][2]                                              # dW: only rows that some sample selected
    assert 0 < int((w.abs().sum(1) > 0).sum()) <= d_out

def test_flops_scale_with_k():
    x = torch.randn(4, 512)
    counts = []
    for k in (0.1, 0.5, 1.0):
        lay = SparseMIDLayer(512, k, rank=32).eval()
        with FlopCounterMode(display=False) as fc: lay(x)
        assert fc.get_total_flops() == lay.flops(4)
        counts.append(fc.get_total_flops())
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] - counts[1] == 2 * 4 * 512 * (512 - 256)          # each extra selected neuron costs one row of W
