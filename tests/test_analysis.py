"Analysis: selection masks, SMI of selected neurons, reliability bins, embeddings; saved models and the shared main runs."
import numpy as np, torch, pytest
from torch.utils.data import TensorDataset
from midl.analysis import selected_activity, smi_summary, neuron_profile, pool_reliability, classifier_layer, embeddings
from midl.metrics import reliability, ece, neuron_mi
from midl.models import build_model
from midl.experiment import RunSpec, sweep, load_model, model_path
from midl.train import evaluate
from midl.plan import table3_specs, table4_specs, table6_specs, table7_specs, table8_specs, ABLATIONS

def _data(n=120, d=20, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g))

@pytest.mark.parametrize('layer,cfg,k', [('midl', dict(top_k=0.25), 16), ('random_topk', dict(top_k=0.5), 32),
                                         ('gumbel', dict(top_k=0.5), 32), ('dense', dict(p=0.5), 64), ('f1_only', {}, 64)])
def test_selection_mask_has_k_ones_per_row(layer, cfg, k):
    ds = _data()
    torch.manual_seed(0); m = build_model(input_shape=(20,), n_classes=3, hidden=(64,), layer=layer, **cfg)
    a, mask, y = selected_activity(m, ds, batch_size=50)
    assert a.shape == mask.shape == (120, 64) and len(y) == 120
    assert torch.equal(mask.sum(1), torch.full((120,), float(k)))

def test_random_topk_eval_mask_is_the_one_the_forward_used():
    ds = _data()
    torch.manual_seed(0); m = build_model(input_shape=(20,), n_classes=3, hidden=(64,), layer='random_topk', top_k=0.5)
    a1, m1, _ = selected_activity(m, ds, batch_size=40); a2, m2, _ = selected_activity(m, ds, batch_size=40)
    assert torch.equal(m1, m2) and torch.equal(a1, a2)

def test_smi_summary_frequency_and_zero_mi_for_unused_neurons():
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.integers(0, 2, 400))
    a = torch.as_tensor(np.c_[y.numpy() + 0.1 * rng.standard_normal(400), rng.standard_normal(400)]).float()
    m = torch.stack([torch.ones(400), torch.zeros(400)], 1)     # neuron 0 always selected, neuron 1 never
    s = smi_summary(a, m, y, n_slices=8, n_samples=400)
    assert s['activation_freq'] == 0.5 and s['smi_selected'] > 0.1
    p = neuron_profile(a, m, y, n_samples=400)
    assert p.mi[1] == 0. and p.mi[0] > 0.3 and list(p.activation_freq) == [1., 0.]

def test_neuron_mi_constant_column_is_zero():
    X = np.c_[np.full(300, 2.5), np.random.default_rng(0).standard_normal(300)]
    assert neuron_mi(X, np.random.default_rng(1).integers(0, 4, 300))[0] == 0.

def test_reliability_bins_reproduce_ece():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), 500); y = rng.integers(0, 5, 500)
    r = reliability(p, y)
    assert sum(r['count']) == 500
    manual = sum(n / 500 * abs(a - c) for n, a, c in zip(r['count'], r['accuracy'], r['confidence']))
    assert abs(manual - ece(p, y)) < 1e-12
    pooled = pool_reliability([r, r])
    assert pooled['count'] == [2 * n for n in r['count']] and np.allclose(pooled['accuracy'], r['accuracy'])

def test_embeddings_are_classifier_inputs():
    ds = _data()
    m = build_model(input_shape=(20,), n_classes=3, hidden=(32, 16), layer='midl', top_k=0.5)
    X, y = embeddings(m, ds, max_samples=50)
    assert X.shape == (50, classifier_layer(m).in_features) == (50, 16)

def test_saved_model_reproduces_recorded_metrics(tmp_path):
    spec = RunSpec(dataset='digits', layer='midl', epochs=1, n_train=200, n_test=100, tag='t')
    rec = sweep([spec], tmp_path, models_dir=tmp_path / 'm', progress=False)[0]
    assert model_path(tmp_path / 'm', spec).exists()
    model, test = load_model(spec, tmp_path / 'm')
    assert evaluate(model, test)['accuracy'] == rec['metrics']['accuracy']
    assert sweep([spec, RunSpec(dataset='digits', seed=3, tag='t')], tmp_path, run_missing=False, progress=False) == [rec]

def test_load_model_without_weights_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='retrain=True'): load_model(RunSpec(dataset='digits'), tmp_path, retrain=False)

def test_tables_share_the_main_runs():
    t8 = {s.key for s in table8_specs(['cifar10', 'mnist'], 'full')}
    assert len(t8) == 2 * 2 * (5 + 5)                                      # 5 seeds each (clean and 20 % noise, two layers)
    t3 = table3_specs(scale='full'); assert len(t3) == 4 * 2 * 5 and len({s.key for s in t3} & t8) == 20
    t4 = table4_specs(scale='full'); assert len(t4) == len(ABLATIONS) * 5 and len({s.key for s in t4} & t8) == 5
    assert all(s.layer_config['top_k'] == 0.5 for s in t4)
    assert {s.key for s in table7_specs(scale='full')} <= t8
    t6 = table6_specs(scale='full'); assert sum(s.key in t8 for s in t6) == 4 and len(t6) == 6

def test_summed_brier_is_at_least_half_the_error_rate():
    "The bound the report uses against the paper's Table 7: each misclassified sample adds at least 0.5."
    from midl.metrics import brier_score
    rng = np.random.default_rng(0)
    for conc in (0.1, 1., 10.):
        p = rng.dirichlet(np.full(10, conc), 2000); y = rng.integers(0, 10, 2000)
        err = float((p.argmax(1) != y).mean())
        assert brier_score(p, y) >= 0.5 * err
    p = np.array([[0.5 - 1e-9, 0.5 + 1e-9]]); assert abs(brier_score(p, np.array([0])) - 0.5) < 1e-8   # the bound is tight

def test_selected_activity_restores_the_block_mode_and_one_path_mask():
    ds = _data()
    torch.manual_seed(0); m = build_model(input_shape=(20,), n_classes=3, hidden=(16,), layer='f2_only')
    m.train(); m.hidden[0].alpha_drop.eval()                              # a frozen part inside the block
    a, mask, _ = selected_activity(m, ds, batch_size=60)
    assert m.training and m.hidden[0].training and not m.hidden[0].alpha_drop.training
    assert torch.equal(mask, torch.ones(120, 16))                        # one path: every neuron selected

def test_smi_summary_reports_each_smi_beside_its_floor():
    rng = np.random.default_rng(1)
    y = torch.as_tensor(rng.integers(0, 3, 500))
    informative = np.eye(3)[y.numpy()] @ rng.standard_normal((3, 6)) * 2 + rng.standard_normal((500, 6))
    a = torch.as_tensor(np.c_[informative, rng.standard_normal((500, 6))]).float()
    m = torch.cat([torch.ones(500, 6), torch.zeros(500, 6)], 1)          # selected: the informative half only
    s = smi_summary(a, m, y, n_slices=200, n_shuffles=2)
    assert (s['n_slices'], s['k'], s['n_shuffles']) == (200, 3, 2)
    for key in ('smi_selected', 'smi_output'):
        assert abs(s[f'{key}_floor']) < 0.02 and s[key] > s[f'{key}_floor'] + 0.1
    assert s['smi_selected'] > s['smi_output']                            # the noise half dilutes the whole output
    noise = smi_summary(torch.randn(500, 6), torch.ones(500, 6), y, n_slices=200, n_shuffles=2)
    assert abs(noise['smi_output'] - noise['smi_output_floor']) < 0.02    # no information: at the floor
