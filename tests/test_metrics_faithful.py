"Weighted F1, peak live memory, SMI with the reference's estimator and its floor, the Brier lower bound."
import numpy as np, pytest, torch
from torch import nn
from sklearn.metrics import f1_score
from midl.metrics import (f1_macro, f1_weighted, peak_live_memory_mb, peak_memory_mb, knn_distance_1d, sliced_mi, smi_floor,
                          two_gaussian_mi, two_gaussian_smi, brier_score, brier_lower_bound, accuracy)

def test_weighted_f1_matches_sklearn_and_hand_example():
    rng = np.random.default_rng(3)
    for C in (2, 5, 9):
        y, p = rng.integers(0, C, 400), rng.integers(0, C, 400)
        assert f1_weighted(p, y) == pytest.approx(f1_score(y, p, average='weighted'))
        assert f1_macro(p, y) == pytest.approx(f1_score(y, p, average='macro'))
    y = rng.choice(4, 600, p=[0.7, 0.2, 0.05, 0.05]); p = np.where(rng.random(600) < 0.8, y, rng.integers(0, 4, 600))
    assert f1_weighted(p, y) == pytest.approx(f1_score(y, p, average='weighted'))   # imbalanced: weighted != macro
    assert abs(f1_weighted(p, y) - f1_macro(p, y)) > 0.05
    assert f1_weighted([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx((3 * 4 / 5 + 2 / 3) / 4)

def test_evaluate_records_weighted_f1():
    from torch.utils.data import TensorDataset
    from midl.train import evaluate
    X = torch.eye(3).repeat(4, 1); y = torch.tensor([0, 1, 2] * 3 + [1, 1, 1])
    lin = nn.Linear(3, 3)
    with torch.no_grad(): lin.weight.copy_(torch.eye(3)); lin.bias.zero_()      # predicts 0, 1, 2, 0, 1, 2, ...
    r = evaluate(lin, TensorDataset(X, y))
    assert r['accuracy'] == pytest.approx(10 / 12)
    assert r['f1_weighted'] == pytest.approx(f1_score(y, lin(X).argmax(1), average='weighted'))
    assert r['f1_macro'] == pytest.approx(f1_score(y, lin(X).argmax(1), average='macro'))

def _mlp(a, b, c, inplace=False): return nn.Sequential(nn.Linear(a, b), nn.ReLU(inplace=inplace), nn.Linear(b, c))

@pytest.mark.parametrize('inplace', [False, True])
def test_peak_live_memory_by_hand(inplace):
    a, b, c, n = 50, 70, 10, 16
    net = _mlp(a, b, c, inplace)
    weights = (a * b + b + b * c + c) * 4
    acts = (n * b + n * c) if inplace else 2 * n * b          # out of place: h and relu(h) alive together (c < b)
    assert peak_live_memory_mb(net, torch.randn(n, a)) * 2**20 == weights + 4 * n * a + 4 * acts

def test_peak_is_below_the_old_sum_of_outputs_on_a_deep_net():
    L, w, n = 10, 128, 64
    deep = nn.Sequential(*[m for _ in range(L) for m in (nn.Linear(w, w), nn.ReLU())])
    weights = L * (w * w + w) * 4
    peak = peak_memory_mb(deep, torch.randn(n, w)) * 2**20
    assert peak == weights + 4 * n * w * 3                     # input + two activations
    assert peak < weights + 2 * L * n * w * 4                  # the old proxy: every leaf output summed

def test_peak_counts_functional_ops_and_views():
    class F(nn.Module):
        def forward(self, x): return (x * 2).view(-1).sigmoid()   # no modules at all: the old proxy saw 0 bytes
    x = torch.randn(32, 8)
    assert peak_live_memory_mb(F(), x) * 2**20 == 3 * 32 * 8 * 4   # input, x*2 (its view is free), sigmoid

def test_knn_distance_1d_is_brute_force():
    z = np.random.default_rng(1).standard_normal((40, 3))
    brute = np.sort(np.abs(z[:, None] - z[None]), axis=1)
    for k in (1, 2, 3, 5): np.testing.assert_allclose(knn_distance_1d(z, k), brute[:, k])

def test_sliced_mi_recovers_known_values():
    rng = np.random.default_rng(7); n = 2000
    y = rng.integers(0, 2, n); s = (2 * y - 1)[:, None]
    for mu in (0.5, 1.5):
        est = sliced_mi(s * mu + rng.standard_normal((n, 1)), y, n_slices=2)['smi']
        assert est == pytest.approx(two_gaussian_mi(mu), abs=0.05)
    mu = np.r_[1.5, -1.0, 0.5, 0.0, 0.0, 1.0]                   # d = 6, ||mu|| = sqrt(4.5)
    X = s * mu + rng.standard_normal((n, 6))
    assert sliced_mi(X, y)['smi'] == pytest.approx(two_gaussian_smi(np.linalg.norm(mu), 6), abs=0.03)

def test_smi_defaults_follow_the_reference_and_floor_is_near_zero():
    rng = np.random.default_rng(0); y = rng.integers(0, 3, 600); X = rng.standard_normal((600, 5))
    r = sliced_mi(X, y)
    assert (r['n_slices'], r['k'], r['estimator']) == (1000, 3, 'ksg_cd')
    f = smi_floor(X, y, n_slices=200, n_shuffles=3)
    assert abs(f['floor']) < 0.01 and abs(r['smi'] - f['floor']) < 0.02
    dep = X + 2 * np.eye(3)[y] @ rng.standard_normal((3, 5))
    assert sliced_mi(dep, y, n_slices=200)['smi'] > smi_floor(dep, y, n_slices=200, n_shuffles=2)['floor'] + 0.2
    with pytest.raises(ValueError, match='lower k'): sliced_mi(X[:8], np.arange(8) % 3)
    with pytest.raises(ValueError, match="'ross'"): sliced_mi(X, y, estimator='kraskov')

def test_brier_lower_bound_holds_and_is_approached():
    rng = np.random.default_rng(5)
    for conc in (0.02, 0.2, 1., 20.):
        p = rng.dirichlet(np.full(10, conc), 4000)
        y = np.where(rng.random(4000) < rng.random(), p.argmax(1), rng.integers(0, 10, 4000))
        acc = accuracy(p.argmax(1), y)
        assert brier_score(p, y) >= brier_lower_bound(acc, 10)
        assert brier_score(p, y, 'mean') >= brier_lower_bound(acc, 10, 'mean')
    p = np.array([[0.5 - 1e-7, 0.5 + 1e-7, 0.], [1., 0., 0.]]); y = np.array([0, 0])
    assert brier_score(p, y) == pytest.approx(brier_lower_bound(0.5, 3), abs=1e-6)
    assert brier_lower_bound(0.85, 10) == pytest.approx(0.075) and brier_lower_bound(0.85, 10, 'mean') == pytest.approx(0.0075)
    with pytest.raises(ValueError, match='not in %'): brier_lower_bound(85., 10)
