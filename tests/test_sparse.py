"SparseMIDLayer against its dense reference over a grid of shapes and both ways of computing F_rich, its FLOPs, the compiled and native kernels and their fallbacks, the `sparse_midl` layer kind, and the measuring helpers."
import math, warnings, pytest, torch
from torch import nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
import midl.sparse, midl.native, midl.math
from midl.sparse import (SparseMIDLayer, GATHER_BUDGET, gather_dot, bytes_bound, latency_sweep, break_even, train_blocks,
                         train_step_ratio)

PATHS = [0., math.inf]                                                # gather_budget: always dense, always gather

@pytest.mark.parametrize('budget', PATHS)
@pytest.mark.parametrize('d_in,d_out,k,rank,bias', [(8, 8, 1, 1, True), (24, 10, 0.5, 3, False), (10, 40, 40, 4, True), (33, 17, 0.3, 8, True)])
def test_sparse_path_equals_dense_reference(d_in, d_out, k, rank, bias, budget):
    torch.manual_seed(0)
    lay = SparseMIDLayer(d_in, k, out_dim=d_out, rank=rank, bias=bias, alpha_dropout=0.2, gather_budget=budget).double().train()
    x = torch.randn(2, 5, d_in, dtype=torch.float64)
    assert lay.path(10) == ('dense' if budget == 0 else 'gather')
    out = {}
    for name, fn in [('sparse', lay), ('dense', lay.forward_dense)]:
        lay.zero_grad(); xx = x.clone().requires_grad_()
        torch.manual_seed(1); y = fn(xx); (y * y.detach().sign()).sum().backward()
        out[name] = [y, xx.grad] + [p.grad.clone() for p in lay.parameters()]
    for a, b in zip(out['sparse'], out['dense']): torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    w = out['sparse'][2]                                              # dW: only rows that some sample selected
    assert 0 < int((w.abs().sum(1) > 0).sum()) <= d_out

@pytest.mark.parametrize('d,k,rank', [(256, 0.1, 16), (96, 0.25, 12), (64, 1, 8), (130, 0.5, 4)])
def test_eval_small_batches_equal_dense_reference_float32(d, k, rank):
    torch.manual_seed(0)
    lay = SparseMIDLayer(d, k, out_dim=d + 3, rank=rank).eval()
    for rows in range(1, 9):
        x = torch.randn(rows, d)
        for grad in (False, True):
            with torch.set_grad_enabled(grad): y = lay(x)
            torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-6)

def test_path_follows_the_budget():
    lay = SparseMIDLayer(400, 0.1, rank=8)                            # k = 40
    assert GATHER_BUDGET == {'torch': 0.25, 'compile': 1.0, 'native': 1.0}
    assert [lay.path(r) for r in (1, 2, 3)] == ['gather', 'gather', 'dense']   # recording gradients: rows × 40 <= 0.25 × 400
    for kernel in ('compile', 'native', 'auto'):
        lay.kernel = kernel
        assert lay.path(10) == 'dense'                                # recording gradients: the plain ops' budget
        with torch.no_grad(): assert (lay.path(10), lay.path(11)) == ('gather', 'dense')   # fused kernels: rows × k <= d_out
    lay.kernel = 'torch'
    with torch.no_grad(): assert (lay.path(2), lay.path(3)) == ('gather', 'dense')
    lay.gather_budget = 0.
    with torch.no_grad(): assert lay.path(1) == 'dense'

@pytest.mark.parametrize('train', [False, True])
def test_flops_scale_with_k_on_the_gather_path(train):
    x = torch.randn(4, 512)
    counts = []
    for k in (0.1, 0.5, 1.0):
        lay = SparseMIDLayer(512, k, rank=32, gather_budget=math.inf).train(train)
        with FlopCounterMode(display=False) as fc: lay(x)
        assert fc.get_total_flops() == lay.flops(4)
        counts.append(fc.get_total_flops())
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] - counts[1] == 2 * 4 * 512 * (512 - 256)          # each extra selected neuron costs one row of W

@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('rows', [1, 2, 3, 64])
def test_flops_of_the_default_paths(rows, train):
    "Eval (the fast path at small batch) and training: FlopCounterMode counts what `flops(rows)` says, on the path taken."
    lay = SparseMIDLayer(1024, 0.25, rank=128).train(train)
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc: lay(torch.randn(rows, 1024))
        assert fc.get_total_flops() == lay.flops(rows)
        kk = 256 if rows * 256 <= GATHER_BUDGET[lay.kernel_now()] * 1024 else 1024   # gather within the kernel's budget, else dense
        assert (kk == 256) == (rows <= 4 if lay.kernel_now() == 'native' else rows == 1)
        assert lay.flops(rows) == 2 * rows * (1024 * 128 + 2 * 128 * 1024 + kk * 1024)

def test_gather_dot():
    torch.manual_seed(0)
    w, x = torch.randn(12, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    idx = torch.randint(0, 12, (4, 3))
    torch.testing.assert_close(gather_dot(w, idx, x), (x @ w.T).gather(1, idx))
    with FlopCounterMode(display=False) as fc: gather_dot(w, idx, x)
    assert fc.get_total_flops() == 2 * 4 * 3 * 5

def test_compiled_kernel_equals_dense_reference():
    "The torch.compile'd gather (or, where this machine cannot compile, its fallback) gives the reference's outputs."
    torch.manual_seed(0)
    lay = SparseMIDLayer(192, 0.25, rank=8, kernel='compile').eval()
    midl.sparse._FUSED.clear()
    with torch.no_grad():
        for rows in (1, 3):
            x = torch.randn(rows, 192)
            assert lay.path(rows) == 'gather'
            torch.testing.assert_close(lay(x), lay.forward_dense(x), rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('where', ['torch.compile', 'first call'])
def test_compile_failure_falls_back_to_plain_ops(monkeypatch, where):
    def broken(*a, **k): raise RuntimeError('no C++ compiler here')
    midl.sparse._FUSED.clear()
    if where == 'torch.compile': monkeypatch.setattr(torch, 'compile', broken)
    else: monkeypatch.setitem(midl.sparse._FUSED, 'fn', broken)
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=4, kernel='compile').eval()
    x = torch.randn(2, 64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        y = lay(x); y2 = lay(x)
    torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-6)      # the second call may take the plain ops' path
    msgs = [str(m.message) for m in w if 'torch.compile' in str(m.message)]
    assert len(msgs) == 1 and 'no C++ compiler here' in msgs[0] and 'plain PyTorch ops' in msgs[0]   # warned once
    assert midl.sparse._FUSED['fn'] is None
    midl.sparse._FUSED.clear()

@pytest.mark.parametrize('d_in,d_out,k,rank,bias', [(8, 8, 1, 1, True), (37, 50, 11, 3, False), (100, 64, 0.5, 8, True),
                                                   (1024, 1024, 0.25, 32, True)])
@pytest.mark.parametrize('threads', [1, 2])
def test_native_kernel_equals_dense_reference(d_in, d_out, k, rank, bias, threads):
    "The C kernel (built on first use) against the dense reference: widths off the 16-wide blocks, groups of 8 and a tail, with and without bias, split over threads."
    assert midl.native.native_kernel() is not None                    # CI and the dev machines have gcc
    torch.manual_seed(0)
    lay = SparseMIDLayer(d_in, k, out_dim=d_out, rank=rank, bias=bias, kernel='native', gather_budget=math.inf).eval()
    old = torch.get_num_threads(); torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for rows in (1, 3, 8):
                x = torch.randn(rows, d_in)
                assert lay._native_now(x)
                torch.testing.assert_close(lay(x), lay.forward_dense(x), rtol=1e-5, atol=1e-5)
    finally: torch.set_num_threads(old)

@pytest.mark.parametrize('n,k', [(2, 1), (33, 5), (1024, 256), (1000, 999), (64, 64)])
@pytest.mark.parametrize('data', ['uniform', 'ties', 'nan', 'saturated'])
def test_native_topk_selects_the_reference_set(n, k, data):
    "topk_native's set is topk_indices's: unique sets found in C, tied k-th places decided by torch.topk."
    torch.manual_seed(n + k)
    a = torch.rand(6, n)
    if data == 'ties': a = (a * 4).round()
    if data == 'nan': a[:, ::2] = float('nan')
    if data == 'saturated': a = torch.sigmoid(torch.randn(6, n) * 40)   # many gates exactly 0 or 1 in float32
    got, want = midl.native.topk_native(a, k), midl.math.topk_indices(a, k)
    assert torch.equal(got.sort(-1).values, want.sort(-1).values)

def test_float32_training_with_native_topk_equals_dense_reference():
    torch.manual_seed(0)
    lay = SparseMIDLayer(300, 0.3, rank=8, alpha_dropout=0.).train()
    x = torch.randn(16, 300)
    y = lay(x); y.square().sum().backward(); g = [p.grad.clone() for p in lay.parameters()]
    lay.zero_grad(); yd = lay.forward_dense(x); yd.square().sum().backward()
    torch.testing.assert_close(y, yd, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, [p.grad for p in lay.parameters()]): torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

def test_native_build_failure_falls_back_to_plain_ops(monkeypatch, tmp_path):
    monkeypatch.setattr(midl.native, '_NATIVE', {}); monkeypatch.setattr(midl.native, '_SHIM', {})
    monkeypatch.setenv('CC', 'no-such-cc'); monkeypatch.setenv('MIDL_KERNEL_CACHE', str(tmp_path))
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=4).eval()                     # kernel 'auto'
    x = torch.randn(2, 64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        y, y2 = lay(x), lay(x)
        assert lay.kernel_now() == 'torch'
    torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-6)
    msgs = [str(m.message) for m in w if 'native kernel' in str(m.message)]
    assert len(msgs) == 1 and "no C compiler 'no-such-cc'" in msgs[0] and 'install gcc' in msgs[0]
    assert list(tmp_path.iterdir()) == []                             # nothing half-built left behind

@pytest.mark.parametrize('d_in,d_out,k,rank,bias', [(8, 8, 1, 1, True), (37, 50, 11, 3, False), (512, 512, 0.25, 32, True)])
@pytest.mark.parametrize('threads', [1, 2])
def test_shim_equals_ctypes_path_and_dense_reference(monkeypatch, d_in, d_out, k, rank, bias, threads):
    "The one-call C++ path gives the ctypes path's bits (the same C kernels) and the dense reference's function, with the same selected neurons."
    assert midl.native.native_shim() is not None                      # CI and the dev machines have g++
    torch.manual_seed(0)
    lay = SparseMIDLayer(d_in, k, out_dim=d_out, rank=rank, bias=bias, gather_budget=math.inf).eval()
    old = torch.get_num_threads(); torch.set_num_threads(threads)
    monkeypatch.setattr(midl.native, 'PARALLEL_MIN', 0)                # split over the threads even when small
    try:
        with torch.no_grad():
            for rows in (1, 3, 8):
                x = torch.randn(rows, d_in)
                y = lay(x)
                shim = midl.native._SHIM['fn']; midl.native._SHIM['fn'] = None   # the ctypes path
                try: y_ctypes = lay(x)
                finally: midl.native._SHIM['fn'] = shim
                assert torch.equal(y, y_ctypes)
                torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-5)
    finally: torch.set_num_threads(old)

def test_native_pass_selects_the_dense_references_neurons():
    "forward and forward_dense compute the gate with the same C code where the pass runs natively, so no near-tie can select differently: 400 single samples."
    torch.manual_seed(0)
    lay = SparseMIDLayer(512, 0.25, rank=32).eval()
    with torch.no_grad():
        for _ in range(400):                                          # another selection would move two outputs by
            x = torch.randn(1, 512)                                   # alpha (F_rich - F_cheap), far beyond the tolerance
            torch.testing.assert_close(lay(x), lay.forward_dense(x), rtol=1e-5, atol=1e-5)

def test_gate_is_native_exactly_where_the_pass_is():
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=8).eval()
    (down, up), x = lay.alpha_proj, torch.randn(2, 64)
    native = midl.native._gate_native(x, down.weight, up.weight, up.bias)[1]
    torch_gate = torch.sigmoid(lay.alpha_proj(x))
    with torch.no_grad(): assert torch.equal(lay.gate_alpha(x), native)
    assert torch.equal(lay.gate_alpha(x), torch_gate)                    # gradients recorded: PyTorch's ops
    with torch.no_grad():
        assert torch.equal(lay.train().gate_alpha(x), torch_gate)     # training
        assert torch.equal(lay.eval().gate_alpha(x.view(2, 1, 64)), native.view(2, 1, 64))   # leading dimensions
        with FlopCounterMode(display=False): assert torch.equal(lay.gate_alpha(x), torch_gate)
        torch.testing.assert_close(native, torch_gate, rtol=1e-5, atol=1e-6)

def test_shim_build_failure_falls_back_to_ctypes(monkeypatch, tmp_path):
    monkeypatch.setattr(midl.native, '_SHIM', {})
    monkeypatch.setenv('CXX', 'no-such-cxx'); monkeypatch.setenv('MIDL_KERNEL_CACHE', str(tmp_path))
    monkeypatch.setattr(midl.native, '_NATIVE', {})                     # the C kernels build into the empty cache
    torch.manual_seed(0)
    lay = SparseMIDLayer(64, 0.25, rank=4).eval()
    x = torch.randn(2, 64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        y, y2 = lay(x), lay(x)
        assert lay.kernel_now() == 'native' and lay._native_now(x)      # the C kernels through ctypes
        torch.testing.assert_close(y, lay.forward_dense(x), rtol=1e-5, atol=1e-6)
    msgs = [str(m.message) for m in w if 'C++ entry point' in str(m.message)]
    assert len(msgs) == 1 and "no C++ compiler 'no-such-cxx'" in msgs[0] and 'install g++' in msgs[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == '.so') == [midl.native.native_kernel().lib.name]   # the C library; nothing of the C++ module

def test_native_kernel_is_built_once_and_reused(tmp_path):
    lib = midl.native.build_native(cache=tmp_path)
    stamp = lib.stat().st_mtime_ns
    assert midl.native.build_native(cache=tmp_path) == lib and lib.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([lib.name, lib.with_suffix('.sha256').name, '.build.lock'])   # the library, its hash and the build lock

def test_native_kernel_is_skipped_under_flop_counter_and_for_other_dtypes():
    lay = SparseMIDLayer(256, 0.25, rank=8).eval()
    x = torch.randn(1, 256)
    with torch.no_grad():

        assert lay._native_now(x)
        assert not lay._native_now(x.double())
        with FlopCounterMode(display=False): assert not lay._native_now(x)
        from midl.metrics import LiveTensorBytes
        with LiveTensorBytes(): assert lay._native_now(x)              # memory counters see the native pass itself

def _toy(kind, n=16):
    g = torch.Generator().manual_seed(0)
    if kind == 'tabular': return torch.randn(n, 14, generator=g), dict(input_shape=(14,), n_classes=2)
    if kind == 'gray': return torch.randn(n, 1, 28, 28, generator=g), dict(input_shape=(1, 28, 28), n_classes=10)
    if kind == 'rgb': return torch.randn(n, 3, 32, 32, generator=g), dict(input_shape=(3, 32, 32), n_classes=10)
    return torch.randint(1, 50, (n, 12), generator=g), dict(input_shape=(12,), n_classes=2, kind='text', vocab_size=50)

@pytest.mark.parametrize('kind,backbone', [('tabular', 'mlp'), ('gray', 'mlp'), ('rgb', 'cnn'), ('text', 'lstm')])
def test_sparse_midl_kind_on_every_backbone(kind, backbone):
    from midl.models import build_model
    from midl.layers import LAYERS, SparseMIDBlock, MIDBlock, hidden_blocks, model_anr
    assert LAYERS['sparse_midl'] is SparseMIDBlock and issubclass(SparseMIDBlock, (MIDBlock, SparseMIDLayer))
    torch.manual_seed(0)
    x, desc = _toy(kind)
    m = build_model(layer='sparse_midl', top_k=0.5, rank=4, hidden=(16, 12), **desc)
    blocks = hidden_blocks(m)
    assert len(blocks) == 2 and all(isinstance(b, SparseMIDBlock) and b.rank == 4 for b in blocks)
    assert type(m.features).__name__ == {'mlp': 'Flatten', 'cnn': 'Sequential', 'lstm': 'LSTMEncoder'}[backbone]
    out = m(x)
    assert out.shape == (16, desc['n_classes']) and (blocks[0](torch.randn(3, blocks[0].in_features)) >= 0).all()   # ends in ReLU
    F.cross_entropy(out, torch.arange(16) % desc['n_classes']).backward()
    for n, p in m.named_parameters():
        g = p.grad[1:] if n == 'features.embed.weight' else p.grad    # the padding row never learns
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, n
    assert model_anr(m, x) == pytest.approx((8 + 6) / (16 + 12))     # eval: exactly k/d in each block
    assert model_anr(m, x[:1]) == pytest.approx((8 + 6) / (16 + 12))  # one sample: the gather path

def test_bytes_bound_and_sweep_columns():
    assert bytes_bound(4096, 1024, 128) == pytest.approx(0.25 + 0.09375)
    t = latency_sweep(dims=(48,), batches=(1, 6), keeps=(0.25, 1.0), repeats=2, warmup=1, threads=1)
    assert len(t) == 4 and set(t.path) == {'gather', 'dense'}
    assert t.keep.tolist() == [0.25, 1.0, 0.25, 1.0] and (t['rank'] == 6).all()
    torch.testing.assert_close(torch.tensor(t.ratio.values), torch.tensor((t.sparse_ms / t.linear_ms).values))
    be = break_even(t.assign(ratio=[0.4, 0.9, 1.5, 2.0]))
    assert be.faster_up_to_keep.tolist()[0] == 1.0 and math.isnan(be.faster_up_to_keep.tolist()[1])

def test_train_step_ratio_runs_each_block():
    n = torch.get_num_threads()
    t = train_step_ratio(d=24, batch=4, keep=0.5, repeats=2, warmup=1, threads=1)
    assert torch.get_num_threads() == n                                # threads restored
    assert list(t.index) == list(train_blocks(24)) and t.ratio.iloc[0] == 1.0 and (t.median_ms > 0).all()
    assert train_blocks(24)['SparseMIDLayer, gather only'][0].path(10 ** 6) == 'gather'

def test_benchmark_script_writes_its_report(tmp_path, capsys):
    "benchmarks/sparse_bench.py at tiny sizes: the printed report and the --out file hold the same sections."
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location('sparse_bench', Path(__file__).resolve().parent.parent/'benchmarks'/'sparse_bench.py')
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    out = tmp_path/'r'/'bench.md'
    bench.main(['--dims', '64', '--batches', '1', '--keeps', '0.25', '--ranks', '8', '--repeats', '2', '--warmup', '1',
                '--train-d', '64', '--train-batch', '4', '--train-repeats', '2', '--out', str(out)])
    text, printed = out.read_text(), capsys.readouterr().out
    for part in ('## Evaluation latency', '## Largest keep ratio', '## Training step at d=64', 'target: SparseMIDLayer'):
        assert part in text and part in printed
    assert [p.name for p in out.parent.iterdir()] == ['bench.md']           # no temporary file left behind
