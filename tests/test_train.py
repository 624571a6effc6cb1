"Training loop: determinism, learning, annealing, auxiliary losses, configuration errors."
import pytest, torch
from torch import nn
from torch.utils.data import TensorDataset
from midl.core import MIDLayer, midl_layers
from midl.train import TrainConfig, fit, evaluate, get_device
from midl.layers import HiddenBlock, collect_aux_loss

def toy(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 10, generator=g)
    return TensorDataset(X, (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long())

def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(MIDLayer(10, 0.5, out_dim=32), nn.ReLU(), nn.Linear(32, 3))

CFG = TrainConfig(epochs=3, batch_size=32, lr=1e-2, progress=False)

def test_same_seed_same_metrics():
    _, h1 = fit(net(), toy(), toy(200, 1), CFG)
    _, h2 = fit(net(), toy(), toy(200, 1), CFG)
    assert h1 == [dict(r, time_s=h1[i]['time_s']) for i, r in enumerate(h2)]
    _, h3 = fit(net(), toy(), toy(200, 1), CFG, seed=3)
    assert h3[-1]['train_loss'] != h1[-1]['train_loss']

def test_learns_and_evaluates():
    m, h = fit(net(), toy(), config=CFG, epochs=5)
    r = evaluate(m, toy(200, 1))
    assert h[-1]['train_loss'] < h[0]['train_loss'] and r['accuracy'] > 0.8 and r['anr'] == pytest.approx(0.5)
    assert set(r) >= {'loss', 'accuracy', 'f1_macro', 'ece', 'brier', 'brier_mean', 'anr'}

def test_anneal_top_k_reaches_end():
    m, h = fit(net(), toy(), config=CFG, anneal_top_k=(1.0, 0.25))
    assert h[0]['k'] > h[-1]['k'] == 8 and midl_layers(m)[0].k == 8

def test_aux_loss_is_optimised():
    class L2(HiddenBlock, nn.Linear):
        def aux_loss(self): return 10 * self.weight.pow(2).sum()
    torch.manual_seed(0); m = nn.Sequential(L2(10, 3))
    before = m[0].weight.norm().item()
    fit(m, toy(), config=CFG, lr=1e-2)
    assert m[0].weight.norm().item() < before and collect_aux_loss(m).item() > 0

def test_config_errors():
    with pytest.raises(ValueError, match="'adam' or 'sgd'"): TrainConfig(optimizer='rmsprop')
    with pytest.raises(ValueError, match='epochs >= 1'): TrainConfig(epochs=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device='cpu'"): get_device('cuda')

def test_non_finite_loss_stops_the_run():
    from midl.train import NonFiniteLossError
    ds = toy(); ds.tensors[0][5, 3] = float('nan')             # one bad input sample
    with pytest.raises(NonFiniteLossError, match=r'epoch 1, batch \d+ of 13 of training data.*lower the learning rate'):
        fit(net(), ds, config=CFG)
    ds.description = 'toy set'                                  # a dataset with a description is named
    with pytest.raises(FloatingPointError, match=r'toy set'): fit(net(), ds, config=CFG)
    with pytest.raises(NonFiniteLossError, match=r'lr=1e\+30'):  # a learning rate that blows the weights up
        fit(net(), toy(), config=CFG, lr=1e30, optimizer='sgd')

def test_evaluate_exact_metrics_and_restores_modes():
    from midl.train import predict
    X = torch.tensor([[3., 0, 0], [0, 3., 0], [0, 0, 3.], [3., 0, 0]]); y = torch.tensor([0, 1, 2, 1])
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    with torch.no_grad(): m[0].weight.copy_(torch.eye(3)); m[0].bias.zero_()
    m[1].eval()                                                          # frozen: the identity at its initial statistics
    r = evaluate(m, TensorDataset(X, y))
    assert r['accuracy'] == 0.75 and r['n'] == 4 and r['anr'] == 1.0    # the last row is wrong; no gate: ANR 1
    assert r['loss'] == pytest.approx(nn.functional.cross_entropy(m(X), y).item(), rel=1e-6)
    assert m[0].training and not m[1].training                           # each submodule's own mode is back
    predict(m, TensorDataset(X, y)); assert m[0].training and not m[1].training

def test_fused_and_channels_last_train_the_same_model():
    "Fused Adam and NHWC images change how fast a step runs, not what it computes (up to float rounding)."
    import copy
    from torch.utils.data import TensorDataset
    from midl.train import fit, TrainConfig
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(96, 3, 8, 8), torch.randint(0, 3, (96,)))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 3))
    cfg = TrainConfig(epochs=2, batch_size=32, progress=False)
    a, ha = fit(copy.deepcopy(net), data, config=cfg, fused=False, channels_last=False)
    b, hb = fit(copy.deepcopy(net), data, config=cfg, channels_last=True)    # fused Adam, NHWC (forced: by default it is measured)
    assert b[0].weight.is_contiguous(memory_format=torch.channels_last) and not a[0].weight.is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(a.parameters(), b.parameters()): torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert abs(ha[-1]['train_loss'] - hb[-1]['train_loss']) < 1e-5

class Killed(Exception): "A session ending in the middle of a run."

def _kill_at(monkeypatch, epoch):
    import midl.train as T
    real = T.train_epoch
    def stop(*a, **k):
        if a[6] == epoch: raise Killed()
        return real(*a, **k)
    monkeypatch.setattr(T, 'train_epoch', stop)

def test_a_stopped_run_resumes_from_its_checkpoint_with_the_same_result(tmp_path, monkeypatch):
    "`midl.experiment.run` checkpoints into the data cache; after a kill the next run goes on from the last finished epoch."
    from midl.experiment import RunSpec, run
    spec = RunSpec(dataset='digits', layer='midl', epochs=3, seed=1, valid_frac=0.1, select='valid_acc', lr_schedule='onecycle')
    clean = run(spec, root=tmp_path/'a')
    _kill_at(monkeypatch, 3)
    with pytest.raises(Killed): run(spec, root=tmp_path/'b')
    ck = tmp_path/'b'/'.midl'/'checkpoints'/f'{spec.key}.pt'
    assert ck.exists()
    monkeypatch.undo()
    resumed = run(spec, root=tmp_path/'b')
    assert not ck.exists() and not list((tmp_path/'a'/'.midl'/'checkpoints').iterdir())
    assert resumed['training']['resumed_at'] == [2] and 'resumed_at' not in clean['training']
    assert resumed['metrics']['accuracy'] == clean['metrics']['accuracy']
    assert [r['valid_acc'] for r in resumed['history']] == [r['valid_acc'] for r in clean['history']]

def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, monkeypatch):
    ck = tmp_path/'run.pt'
    _kill_at(monkeypatch, 2)
    with pytest.raises(Killed): fit(net(), toy(), config=CFG, checkpoint=ck)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"another training configuration.*'batch_size': \(32, 16\).*delete it"):
        fit(net(), toy(), config=CFG, checkpoint=ck, batch_size=16)
    assert ck.exists()                                     # refused, not overwritten
