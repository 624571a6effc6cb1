"The native kernels (midl.native) and SparseMIDLayer's routing around them: one regression test per defect of issue 22, and the numerical promises checked on two build targets."
import copy, math, os, re, subprocess, sys, textwrap
import pytest, torch
from torch import nn
import torch.nn.utils.prune as prune
import midl.native as K
from midl.math import topk_indices
from midl.sparse import SparseMIDLayer

def _run(code, env=None, timeout=120):
    "Run `code` in a fresh Python process (what a crash or a hang would do to pytest, it does there): (returncode, output)."
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout + r.stderr

def _agree(lay, x, seed=0):
    "lay(x) and lay.forward_dense(x) with the same random draws: close, or both raising."
    outs = []
    for fn in (lay, lay.forward_dense):
        torch.manual_seed(seed)
        try:
            with torch.no_grad(): outs.append(fn(x))
        except Exception as e: outs.append(e)
    got, want = outs
    if isinstance(want, Exception): assert isinstance(got, Exception), f'the reference raised {want!r}, forward gave a result'
    else:
        assert not isinstance(got, Exception), f'forward raised {got!r} where the reference did not'
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    return got

# defect 1: sub-modules replaced after construction reached the C kernels unchecked
@pytest.mark.parametrize('part,new,name', [('f1', lambda: nn.Linear(64, 80), 'f1 (W)'), ('f1', lambda: nn.Linear(48, 64), 'f1 (W)'),
                                            ('f2.1', lambda: nn.Linear(8, 128), 'f2[1] (U_c)'),
                                            ('alpha_proj.1', lambda: nn.Linear(8, 32), 'alpha_proj[1] (U_alpha)')])
@pytest.mark.parametrize('train', [False, True])
def test_parts_of_other_sizes_are_a_clear_error(part, new, name, train):
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).train(train)
    parent, _, attr = ('.' + part).rpartition('.')
    setattr(lay.get_submodule(parent[1:]), attr, new())
    with pytest.raises(ValueError, match=re.escape(f'SparseMIDLayer.{name} has weight')):
        with torch.no_grad(): lay(torch.randn(3, 64))

@pytest.mark.parametrize('change', ['double', 'non-contiguous', 'bfloat16'])
@pytest.mark.parametrize('part', ['f1', 'f2.1', 'alpha_proj.1', 'alpha_proj.0'])
def test_parts_of_another_dtype_or_layout_give_the_reference(part, change):
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).eval()
    m = lay.get_submodule(part)
    w = m.weight.detach()
    m.weight = nn.Parameter({'double': w.double(), 'bfloat16': w.to(torch.bfloat16), 'non-contiguous': w.T.contiguous().T}[change])
    for rows in (1, 5):
        out = _agree(lay, torch.randn(rows, 64))
        if change == 'non-contiguous': assert out.isfinite().all() and out.abs().max() < 1e3

# defect 2: topk_native with k greater than the width never returned
@pytest.mark.parametrize('k', [6, 0])
def test_topk_with_k_outside_the_width_is_an_error_not_a_hang(k):
    rc, out = _run(f'''
        import torch, midl.native as K
        try: K.topk_native(torch.rand(2, 5), {k})
        except ValueError as e: print('ValueError:', e)
        ''', timeout=60)
    assert rc == 0 and f'k={k} must lie in 1..5' in out, out

# defect 3: a truncated or corrupted cached kernel killed every later import with SIGBUS
@pytest.mark.parametrize('damage', ['truncate', 'zeros', 'no hash'])
def test_damaged_cached_kernel_is_rebuilt_not_loaded(tmp_path, damage):
    use = '''
        import torch, midl.native as K
        from midl.sparse import SparseMIDLayer
        torch.manual_seed(0)
        lay = SparseMIDLayer(64, 0.25, rank=8).eval()
        x = torch.randn(2, 64)
        with torch.no_grad(): torch.testing.assert_close(lay(x), lay.forward_dense(x), rtol=1e-5, atol=1e-5)
        assert K.native_kernel() is not None and K.native_shim() is not None
        print('ok', K.native_kernel().lib.name)
        '''
    env = {'MIDL_KERNEL_CACHE': str(tmp_path)}
    rc, out = _run(use, env, timeout=300)
    assert rc == 0 and 'ok' in out, out
    for lib in tmp_path.glob('*.so'):
        size = lib.stat().st_size
        if damage == 'truncate': os.truncate(lib, size // 3)
        elif damage == 'zeros': lib.write_bytes(b'\0' * size)
        else: lib.with_suffix('.sha256').unlink()
    rc, out = _run(use, env, timeout=300)
    assert rc == 0 and 'ok' in out, f'exit {rc}: {out}'
    assert all(K.verified(lib) for lib in tmp_path.glob('*.so'))

# defect 4: with D shared, the fast path read alpha_proj[0] where the reference reads f2[0]
def test_unshared_down_projection_gives_the_reference():
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).eval()
    lay.f2[0] = copy.deepcopy(lay.f2[0])
    with torch.no_grad(): lay.f2[0].weight.add_(0.5)                     # the two copies differ, as after a step on one
    for rows in (1, 3, 40): _agree(lay, torch.randn(rows, 64))
    lay.train()
    x = torch.randn(4, 64, requires_grad=True)
    torch.manual_seed(1); y = lay(x)
    torch.manual_seed(1); torch.testing.assert_close(y, lay.forward_dense(x))

# defect 5: forward hooks and pruning on the sub-modules were skipped
@pytest.mark.parametrize('train', [False, True])
def test_forward_hooks_on_parts_run(train):
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).train(train)
    calls = []
    def hook(m, i, o): calls.append(m); return o * 2                   # a hook that changes the output
    lay.f1.register_forward_hook(hook); lay.f2[1].register_forward_pre_hook(lambda m, i: calls.append(m))
    x = torch.randn(3, 64)
    torch.manual_seed(1)
    with torch.no_grad(): y = lay(x)
    assert len(calls) == 2
    torch.manual_seed(1)
    with torch.no_grad(): torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-5)

def test_pruned_parts_use_the_pruned_weights():
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).eval()
    prune.l1_unstructured(lay.f1, 'weight', amount=0.5)
    with torch.no_grad(): lay.f1.weight_orig.mul_(-3)                    # a step on the original weights: the mask applies next call
    sd = lay.state_dict(); sd['f1.weight'] = sd.pop('f1.weight_orig') * sd.pop('f1.weight_mask')
    plain = SparseMIDLayer(64, 0.25, rank=8).eval(); plain.load_state_dict(sd)
    x = torch.randn(3, 64)
    with torch.no_grad(): torch.testing.assert_close(lay(x), plain(x), rtol=1e-5, atol=1e-5)

# defect 6: MC dropout (the dropout on alpha_hat in train mode at eval time) differed between the native and the reference path
@pytest.mark.parametrize('rows', [1, 4, 64])
def test_mc_dropout_matches_the_reference(rows):
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8, alpha_dropout=0.5).eval()
    lay.alpha_drop.train()
    x = torch.randn(rows, 64)
    a, b = _agree(lay, x, seed=1), _agree(lay, x, seed=2)
    assert not torch.equal(a, b)                                          # each pass draws its own mask
    assert int(lay.step) == 0                                             # no schedule step outside training

# the numerical promises: no FMA contraction, so thread splits, routes and build targets give the same bits
def _targets():
    ks = {'native': K.native_kernel()}
    if (base := K.baseline_target()) is not None: ks[base] = K.load_kernels(K.build_native(target=base))
    return ks

def test_kernels_are_built_for_two_targets_without_fma_contraction():
    assert K.baseline_target() is not None or os.uname().machine not in ('x86_64', 'AMD64')
    for flags in (K.NATIVE_FLAGS, K.SHIM_FLAGS): assert '-ffp-contract=off' in flags
    libs = {n: k.lib for n, k in _targets().items()}
    assert len(set(libs.values())) == len(libs)                          # really two builds

@pytest.mark.parametrize('d_in,d_out,r,k,rows', [(37, 50, 3, 11, 3), (300, 200, 16, 50, 5), (1024, 512, 32, 128, 2), (16, 8, 1, 8, 1)])
def test_same_bits_on_every_target_and_thread_split(monkeypatch, d_in, d_out, r, k, rows):
    torch.manual_seed(d_in)
    x, D, Ua, ba, Uc, bc, W, b = (torch.randn(*s) / s[-1] ** 0.5 for s in
                                  [(rows, d_in), (r, d_in), (d_out, r), (d_out,), (d_out, r), (d_out,), (d_out, d_in), (d_out,)])
    monkeypatch.setattr(K, 'PARALLEL_MIN', 0)
    outs = {}
    for name, kern in _targets().items():
        h, alpha = K._gate_native(x, D, Ua, ba, kern)
        idx, c = K._select_cheap_native(alpha, h, Uc, bc, k, kern)
        for threads in (1, 2, 3):
            outs[name, threads] = K._gather_mix_native(W, b, idx, x, alpha, c.clone(), threads=threads, kernels=kern)
    first = next(iter(outs.values()))
    for key, z in outs.items(): assert torch.equal(z, first), key     # equal bits
    alpha = torch.sigmoid(nn.functional.linear(x @ D.T, Ua, ba)); c = nn.functional.linear(x @ D.T, Uc, bc)
    m = torch.zeros_like(alpha).scatter_(1, topk_indices(alpha, k), 1.)
    torch.testing.assert_close(first, c + alpha * m * (nn.functional.linear(x, W, b) - c), rtol=1e-5, atol=1e-5)   # the float32 reference

@pytest.mark.parametrize('threads', [1, 2])
def test_shim_with_threads_gives_the_same_bits(monkeypatch, threads):
    torch.manual_seed(0)
    lay = SparseMIDLayer(512, 0.25, rank=32).eval()
    x = torch.randn(2, 512)
    old = torch.get_num_threads(); torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            y1 = lay(x)
            monkeypatch.setattr(K, 'PARALLEL_MIN', 0); y2 = lay(x)     # split over the threads
            monkeypatch.setattr(K, '_SHIM', {'fn': None}); y3 = lay(x) # the ctypes route
    finally: torch.set_num_threads(old)
    assert torch.equal(y1, y2) and torch.equal(y1, y3)

# torch.export and ONNX, like MIDLayer
def _deploy():
    torch.manual_seed(0)
    return nn.Sequential(SparseMIDLayer(32, 0.25, out_dim=48, rank=4), nn.ReLU(), nn.Linear(48, 3)).eval()

def test_sparse_layer_exports_with_torch_export():
    m = _deploy()
    ep = torch.export.export(m, (torch.randn(4, 32),), dynamic_shapes=({0: torch.export.Dim('batch')},))
    with torch.no_grad():
        for n in (1, 7):
            x = torch.randn(n, 32)
            torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-5, atol=1e-5)

def test_sparse_layer_onnx_export_matches_onnxruntime(tmp_path):
    pytest.importorskip('onnx'); pytest.importorskip('onnxscript'); ort = pytest.importorskip('onnxruntime')
    m, path = _deploy(), tmp_path / 'sparse.onnx'
    torch.onnx.export(m, (torch.randn(4, 32),), str(path), dynamo=True, dynamic_shapes=({0: torch.export.Dim('batch')},))
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for n in (1, 7):
        x = torch.randn(n, 32)
        y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad(): torch.testing.assert_close(torch.from_numpy(y), m(x), atol=1e-5, rtol=1e-5)

# the build cache: one build at a time, a killed builder leaves no lock behind
def test_a_killed_builder_leaves_no_stale_lock(tmp_path):
    rc, out = _run(f'''
        import os, signal, midl.native as K
        from pathlib import Path
        cache = Path({str(tmp_path)!r}); cache.mkdir(exist_ok=True)
        with K._build_lock(cache): os.kill(os.getpid(), signal.SIGKILL)   # dies holding the lock
        ''')
    assert rc == -9
    rc, out = _run(f'''
        import midl.native as K
        print(K.build_native(cache={str(tmp_path)!r}).name)
        ''', timeout=120)
    assert rc == 0 and 'midl_kernels_' in out, out
