"Metric definitions on hand-computable cases."
import numpy as np, pytest, torch
from torch import nn
from sklearn.metrics import f1_score
from midl.core import MIDLayer
from midl.metrics import (accuracy, f1_macro, activation_stats, executed_flops, ideal_flops, latency, peak_memory_mb,
                          ece, brier_score, sliced_mi, neuron_mi, collect_features, random_directions, time_summary)

def test_accuracy_and_macro_f1_match_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    assert f1_macro(p, y) == pytest.approx(f1_score(y, p, average='macro'))
    assert accuracy(p, y) == pytest.approx((p == y).mean())

def test_flops_of_linear_and_midl():
    assert executed_flops(nn.Linear(20, 30), torch.randn(7, 20)) == 2 * 7 * 20 * 30
    B, d, k = 4, 32, 8
    m = MIDLayer(d, k)
    assert executed_flops(m, torch.randn(B, d)) == 3 * 2 * B * d * d
    assert ideal_flops(m, torch.randn(B, d)) == 2 * B * d * d + 2 * (k / d) * 2 * B * d * d
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    assert executed_flops(m, torch.randn(2, 3, 8, 8)) == 2 * 2 * 4 * 6 * 6 * 3 * 9 + 2 * 2 * 144 * 5

def test_activation_stats_anr():
    net = nn.Sequential(MIDLayer(8, 2), nn.ReLU(), MIDLayer(8, 6))
    s = activation_stats(net, [(torch.randn(10, 8), torch.zeros(10))])
    assert s['anr'] == pytest.approx((2 + 6) / 16)
    assert activation_stats(nn.Linear(8, 2), [(torch.randn(3, 8), torch.zeros(3))])['anr'] == 1.0

def test_ece_perfect_and_overconfident():
    probs = np.tile([0.8, 0.2], (10, 1)); y = np.array([0] * 8 + [1] * 2)
    assert ece(probs, y) == pytest.approx(0.0)
    assert ece(np.tile([1.0, 0.0], (10, 1)), np.array([0] * 5 + [1] * 5)) == pytest.approx(0.5)
    # two bins: conf 0.55 (all right) and 0.95 (half right): ECE = 0.5*0.45 + 0.5*0.45
    probs = np.array([[0.55, 0.45]] * 2 + [[0.95, 0.05]] * 2); y = np.array([0, 0, 0, 1])
    assert ece(probs, y) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)

def test_brier_forms():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]); y = np.array([0, 1])
    assert brier_score(probs, y) == pytest.approx((0 + 0.25 + 0.25) / 2)
    assert brier_score(probs, y, 'mean') == pytest.approx(0.25 / 3)
    with pytest.raises(ValueError, match="'sum' or 'mean'"): brier_score(probs, y, 'avg')

def test_sliced_mi_synthetic_dependence():
    rng = np.random.default_rng(0); y = rng.integers(0, 3, 800)
    indep = sliced_mi(rng.standard_normal((800, 6)), y, n_slices=24)
    dep = sliced_mi(np.eye(3)[y] @ rng.standard_normal((3, 6)) * 3 + 0.1 * rng.standard_normal((800, 6)), y, n_slices=24)
    assert indep['smi'] < 0.03 < 0.3 < dep['smi'] < np.log(3)
    assert (indep['n_slices'], indep['k'], indep['n']) == (24, 3, 800)
    np.testing.assert_allclose(np.linalg.norm(random_directions(4, 10), axis=0), 1.0)
    mi = neuron_mi(np.c_[np.eye(3)[y][:, :1], rng.standard_normal(800)], y)
    assert mi[0] > 0.3 and mi[1] < 0.03

def test_latency_and_memory_report_sane_values():
    r = latency(nn.Linear(32, 32), torch.randn(64, 32), warmup=1, repeats=5)
    assert r['repeats'] == 5 and r['min_ms'] > 0
    assert time_summary([4., 1., 3., 2., 5.]) == dict(median_ms=3., iqr_ms=2., min_ms=1., max_ms=5., repeats=5)
    # CPU: live peak = weights + input + output (was weights + output, the input left out)
    assert peak_memory_mb(nn.Linear(100, 50), torch.randn(8, 100)) == pytest.approx((100 * 50 + 50 + 8 * 100 + 8 * 50) * 4 / 2**20)

def test_collect_features_hook():
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    X, y = collect_features(net, net[1], [(torch.randn(4, 6), torch.arange(4))] * 2)
    assert X.shape == (8, 5) and (X >= 0).all() and y.tolist() == [0, 1, 2, 3] * 2

def test_recurrent_flops_are_counted():
    class Seq(nn.Module):
        def __init__(self): super().__init__(); self.rnn = nn.LSTM(8, 16, num_layers=2, bidirectional=True)
        def forward(self, x): return self.rnn(x)[0]
    T, B = 5, 3
    want = 2 * (2 * T * B * 4 * 16 * (8 + 16)) + 2 * (2 * T * B * 4 * 16 * (32 + 16))   # 2 layers x 2 directions
    assert executed_flops(Seq(), torch.randn(T, B, 8)) == want

def test_metrics_restore_each_submodule_mode():
    net = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), MIDLayer(8, 2)).train()
    net[1].eval()                                                        # a frozen part of a training model
    before, x = [m.training for m in net.modules()], torch.randn(6, 8)
    for run in (lambda: activation_stats(net, [(x, torch.zeros(6))]), lambda: executed_flops(net, x),
                lambda: latency(net, x, warmup=1, repeats=2), lambda: peak_memory_mb(net, x),
                lambda: collect_features(net, net[0], [(x, torch.zeros(6))])):
        run()
        assert [m.training for m in net.modules()] == before             # `model.train(was)` would unfreeze the BatchNorm
