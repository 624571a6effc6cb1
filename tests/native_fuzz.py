"""A seeded differential fuzz of midl's native kernels against PyTorch's reference.

    python tests/native_fuzz.py --n 1000 --seed 0

Each configuration draws sizes (d_in, d_out, rank, k, rows, leading dimensions), bias, threads, dtype, a
non-contiguous or empty input and the gather budget, then compares `SparseMIDLayer`'s evaluation pass (C++ module,
ctypes route) with `forward_dense`, the native top-k with `topk_indices`, the mix and `gather_dot` with their
definitions, and checks that the C++ module declines arguments of the wrong shapes. Prints one line per mismatch
and a summary; exits 1 on any mismatch. `tests/test_native_fuzz.py` runs it with the kernels built under
AddressSanitizer and UndefinedBehaviorSanitizer (MIDL_SANITIZE=1), where any invalid read or write aborts the run.
"""
import argparse, math, random, sys
import torch
import midl.native as K
from midl.math import topk_indices
from midl.sparse import SparseMIDLayer, gather_dot

TOL = {torch.float32: 1e-4, torch.float64: 1e-9, torch.bfloat16: 5e-2}

def close(a, b, dtype):
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True)

def layer_case(rng, torch_gen):
    d_in, d_out = rng.randint(1, 300), rng.randint(1, 300)
    rank, k = rng.randint(1, max(1, min(d_in, d_out, 40))), rng.randint(1, d_out)
    dtype = rng.choice([torch.float32] * 6 + [torch.float64, torch.bfloat16])
    lay = SparseMIDLayer(d_in, k, out_dim=d_out, rank=rank, bias=rng.random() < 0.7,
                         gather_budget=rng.choice([None, 0., math.inf, 0.5])).eval().to(dtype)
    lead = rng.choice([(rng.randint(0, 9),), (rng.randint(0, 3), rng.randint(1, 3)), ()])
    shape = (*lead, d_in)
    layout = rng.choice(['plain', 'plain', 'transposed', 'strided'])
    if layout == 'strided': x = torch.randn(*lead, 2 * d_in, generator=torch_gen)[..., ::2]
    elif layout == 'transposed' and len(lead) == 1: x = torch.randn(d_in, *lead, generator=torch_gen).T
    else: x = torch.randn(*shape, generator=torch_gen)
    threads = rng.choice([1, 2])
    K.PARALLEL_MIN = rng.choice([0, 2**20])
    torch.set_num_threads(threads)
    with torch.no_grad():
        got, want = lay(x.to(dtype)), lay.forward_dense(x.to(dtype))
    return close(got, want, dtype), dict(d_in=d_in, d_out=d_out, rank=rank, k=k, dtype=str(dtype), lead=lead, layout=layout,
                                         threads=threads, budget=lay.gather_budget, parallel_min=K.PARALLEL_MIN)

def topk_case(rng, torch_gen):
    n = rng.randint(1, 3000); k = rng.randint(1, n); rows = rng.randint(0, 5)
    a = torch.rand(rows, n, generator=torch_gen)
    kind = rng.choice(['uniform', 'ties', 'nan', 'saturated', 'constant'])
    if kind == 'ties': a = (a * 4).round()
    if kind == 'nan': a[:, ::rng.randint(1, 4)] = float('nan')
    if kind == 'saturated': a = torch.sigmoid(torch.randn(rows, n, generator=torch_gen) * 40)
    if kind == 'constant': a = torch.full((rows, n), 0.5)
    got, want = K.topk_native(a, k), topk_indices(a, k)
    return torch.equal(got.sort(-1).values, want.sort(-1).values), dict(n=n, k=k, rows=rows, kind=kind)

def mix_case(rng, torch_gen):
    d_in, d_out, rows = rng.randint(1, 200), rng.randint(1, 200), rng.randint(0, 6)
    k = rng.randint(1, d_out)
    w, x = torch.randn(d_out, d_in, generator=torch_gen), torch.randn(rows, d_in, generator=torch_gen)
    b = torch.randn(d_out, generator=torch_gen) if rng.random() < 0.5 else None
    idx = torch.stack([torch.randperm(d_out, generator=torch_gen)[:k] for _ in range(rows)]) if rows else torch.empty(0, k, dtype=torch.long)
    alpha, cheap = torch.rand(rows, d_out, generator=torch_gen), torch.randn(rows, d_out, generator=torch_gen)
    want = cheap.clone()
    rich = x @ w.T + (0 if b is None else b)
    want.scatter_(1, idx, (cheap + alpha * (rich - cheap)).gather(1, idx))
    got = K._gather_mix_native(w, b, idx, x, alpha, cheap.clone(), threads=rng.choice([1, 2, 3]))
    ok = close(got, want, torch.float32)
    ridx = torch.randint(0, d_out, (rows, k), generator=torch_gen)         # gather_dot: repeats allowed
    ok &= close(gather_dot(w, ridx, x, 'native'), rich.gather(1, ridx) - (0 if b is None else b[ridx]), torch.float32)
    return ok, dict(d_in=d_in, d_out=d_out, rows=rows, k=k, bias=b is not None)

def shim_declines_case(rng, torch_gen):
    "Arguments of the wrong shapes, dtypes or k: the C++ module returns None, never reads them."
    shim = K.native_shim()
    d_in, d_out, r = rng.randint(2, 64), rng.randint(2, 64), rng.randint(1, 8)
    ps = [torch.randn(*s, generator=torch_gen) for s in [(r, d_in), (d_out, r), (d_out,), (d_out, r), (d_out,), (d_out, d_in), (d_out,)]]
    i = rng.randrange(7)
    bad = rng.choice(['shape', 'dtype', 'k'])
    k = rng.randint(1, d_out)
    if bad == 'shape': ps[i] = torch.randn(*[s + rng.randint(1, 3) for s in ps[i].shape], generator=torch_gen)
    elif bad == 'dtype': ps[i] = ps[i].double()
    else: k = rng.choice([0, -1, d_out + rng.randint(1, 5)])
    with torch.no_grad(): out = shim.forward(torch.randn(2, d_in, generator=torch_gen), *ps, k, math.inf, 0)
    return out is None, dict(d_in=d_in, d_out=d_out, r=r, part=i, bad=bad, k=k)

CASES = [layer_case] * 5 + [topk_case, mix_case, shim_declines_case]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--n', type=int, default=1000, help='configurations to draw')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    rng, gen = random.Random(a.seed), torch.Generator().manual_seed(a.seed)
    assert K.native_kernel() is not None and K.native_shim() is not None, 'the native kernels did not build'
    bad, counts = 0, {}
    for i in range(a.n):
        case = rng.choice(CASES)
        ok, cfg = case(rng, gen)
        counts[case.__name__] = counts.get(case.__name__, 0) + 1
        if not ok: bad += 1; print(f'MISMATCH {i} {case.__name__} {cfg}', flush=True)
    print(f"native fuzz: {a.n} configurations ({', '.join(f'{n}: {c}' for n, c in counts.items())}), {bad} mismatches, "
          f"sanitizers {'on' if K.sanitizing() else 'off'}")
    return 1 if bad else 0

if __name__ == '__main__': sys.exit(main())
