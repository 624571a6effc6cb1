"The exported `midl.core` API: the interpolation equation, top-k counts, gradients, variants, schedules, stats, errors."
import pytest, torch
from torch import nn
import midl
import midl.core
from midl.core import MIDLayer, MIDChannels, TopKSchedule, resolve_top_k, tracking, anr, make_paths
from midl.math import topk_mask

def test_issue_example_and_package_exports():
    y = MIDLayer(64, 32)(torch.randn(8, 64))
    assert y.shape == (8, 64) and midl.MIDLayer is MIDLayer

@pytest.mark.parametrize('top_k,k', [(5, 5), (0.25, 5), (1.0, 20), (1, 1)])
def test_exactly_k_active_per_row(top_k, k):
    l = MIDLayer(20, top_k).eval()
    ah = l.gate(torch.randn(3, 4, 20))
    assert l.k == k and (ah.gt(0).sum(-1) == k).all()

def test_gate_gradient_reaches_only_selected_alpha_rows():
    torch.manual_seed(0)
    l = MIDLayer(8, 2, alpha_dropout=0.)
    x = torch.randn(1, 8)
    l(x).sum().backward()
    g = l.alpha_proj.bias.grad
    assert (g != 0).sum() == 2                         # one sample: only its two selected gates learn

@pytest.mark.parametrize('variant', ['appendix_a', 'section_4_4'])
def test_variants_shapes_gradcheck_and_all_params_learn(variant):
    torch.manual_seed(0)
    l = MIDLayer(10, 0.5, out_dim=6, variant=variant, alpha_dropout=0.).double()
    assert torch.autograd.gradcheck(l, [torch.randn(4, 10, dtype=torch.float64, requires_grad=True)])
    l(torch.randn(32, 10, dtype=torch.float64)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in l.parameters())

def test_section_4_4_structure():
    l = MIDLayer(64, 0.5, out_dim=32, variant='section_4_4')
    lin1 = [m for m in l.f1 if isinstance(m, nn.Linear)]
    assert [m.weight.shape for m in lin1] == [(16, 64), (32, 16)]          # 64 -> r=min(64, 32)//2=16 -> 32, no activation
    old = MIDLayer(64, 0.5, out_dim=32, variant='section_4_4', rank_rule='d_in')
    assert [m.weight.shape for m in old.f1] == [(32, 64), (32, 32)]        # model version 1: r = d_in // 2
    assert [type(m) for m in l.f2] == [nn.Linear, nn.ReLU, nn.Linear]
    assert MIDLayer(64, 0.5, variant='section_4_4', rank=8).f1[0].out_features == 8

def test_alpha_dropout_only_in_training():
    torch.manual_seed(0)
    l = MIDLayer(32, 16, alpha_dropout=0.5)
    x = torch.randn(64, 32)
    assert l.train().gate(x).gt(0).sum(-1).float().mean() < 12
    assert (l.eval().gate(x).gt(0).sum(-1) == 16).all()
    assert (MIDLayer(32, 16, alpha_dropout=0.).train().gate(x).gt(0).sum(-1) == 16).all()

def test_conv_wrapper_pool_and_pixel():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 5)
    mc = MIDChannels(8, 2, out_channels=6, alpha_dropout=0.).eval()
    y = mc(x)
    assert y.shape == (2, 6, 5, 5)
    ah = mc.mid.gate(x.mean((2, 3)))[:, None, None]
    xl = x.movedim(1, -1)
    torch.testing.assert_close(y, (ah * mc.mid.f1(xl) + (1 - ah) * mc.mid.f2(xl)).movedim(-1, 1))
    mp = MIDChannels(8, 2, gate='pixel').eval()
    torch.testing.assert_close(mp(x), mp.mid(xl).movedim(-1, 1))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'): mc(torch.randn(2, 8))

def test_schedule_values_and_layer_stepping():
    s = TopKSchedule(1.0, 0.5, steps=100)
    assert [s(0), s(50), s(100), s(500)] == [1.0, 0.75, 0.5, 0.5]
    assert TopKSchedule(64, 32, steps=10, warmup=5)(10) == 48
    l = MIDLayer(20, TopKSchedule(1.0, 0.5, steps=4)).train()
    ks = []
    for _ in range(6): ks.append(l.k); l(torch.randn(2, 20))
    assert ks == [20, 18, 15, 13, 10, 10]
    l.eval(); l(torch.randn(2, 20)); assert int(l.step) == 6
    sd = l.state_dict(); l2 = MIDLayer(20, TopKSchedule(1.0, 0.5, steps=4)); l2.load_state_dict(sd)
    assert l2.k == 10                                   # schedule position survives save/load

def test_stats_count_dropout_as_inactive():
    torch.manual_seed(0)
    l = MIDLayer(40, 20, alpha_dropout=0.5, track_stats=True).train()
    l(torch.randn(500, 40))
    assert 0.2 < l.stats()['anr'] < 0.3                 # about half of k/d = 0.5 survives dropout
    assert l.stats()['selection_freq'].sum().item() == pytest.approx(20.0)   # selection counted before dropout

@pytest.mark.parametrize('args,match', [((64, 0), r'\[1, 64\]'), ((64, 65), r'\[1, 64\]'), ((64, 1.5), r'\(0, 1\]'),
                                        ((64, 0.0), r'\(0, 1\]'), ((64, -3), r'\[1, 64\]')])
def test_bad_top_k_raises_value_error(args, match):
    with pytest.raises(ValueError, match=match): MIDLayer(*args)

def test_bad_schedule_and_options():
    with pytest.raises(ValueError, match=r'\[1, 64\]'): MIDLayer(64, TopKSchedule(100, 32, steps=5))
    with pytest.raises(TypeError, match='both'): TopKSchedule(64, 0.5, 10)
    with pytest.raises(TypeError, match='int count'): resolve_top_k('half', 8)
    with pytest.raises(ValueError, match='appendix_a'): MIDLayer(8, 2, variant='lowrank')
    with pytest.raises(ValueError, match='masked'): MIDLayer(8, 2, ste='soft')

def test_bad_inputs():
    l = MIDLayer(64, 32)
    with pytest.raises(ValueError, match='be 64.*got 32'): l(torch.randn(8, 32))
    with pytest.raises(TypeError, match='floating-point'): l(torch.ones(8, 64, dtype=torch.long))
    with pytest.raises(TypeError, match='torch.Tensor'): l([[0.0] * 64])

@pytest.mark.parametrize('make,match', [
    (lambda: MIDLayer(dim=0, top_k=1), 'dim=0'),
    (lambda: MIDLayer(8, 0.5, out_dim=0), 'out_dim=0'),                 # was silently out_dim = dim
    (lambda: MIDLayer(-4, 0.5), 'dim=-4'),
    (lambda: MIDLayer(8, 0.5, out_dim=-1), 'out_dim=-1'),
    (lambda: MIDLayer(8, 0.5, variant='section_4_4', rank=0), 'rank=0'),          # was silently d_in // 2
    (lambda: MIDLayer(8, 0.5, variant='section_4_4', f2_hidden=0), 'f2_hidden=0'),  # was silently out_dim
    (lambda: make_paths(0, 4), 'd_in=0'),
    (lambda: make_paths(4, -2, 'section_4_4'), 'd_out=-2'),
    (lambda: MIDChannels(0, 0.5), 'dim=0'),
    (lambda: MIDChannels(8, 0.5, out_channels=0), 'out_dim=0')])
def test_bad_widths_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match + '.*>= 1'): make()

def test_non_int_width_is_a_type_error():
    with pytest.raises(TypeError, match='int number of features'): MIDLayer(8.0, 0.5)
    with pytest.raises(TypeError, match='int number of features'): MIDLayer(8, 0.5, out_dim=True)

def test_f2_hidden_sets_f2_width_and_hidden_is_gone():
    l = MIDLayer(16, 0.5, out_dim=8, variant='section_4_4', rank=4, f2_hidden=24)
    assert [m.weight.shape for m in l.f2 if isinstance(m, nn.Linear)] == [(24, 16), (8, 24)]
    assert l.f1[0].out_features == 4
    assert MIDLayer(16, 0.5, out_dim=8, variant='section_4_4').f2[0].out_features == 8     # default: out_dim
    with pytest.raises(TypeError, match='hidden'): MIDLayer(16, 0.5, variant='section_4_4', hidden=24)

def test_topk_mask_ranks_nan_lowest():
    nan, inf = float('nan'), float('inf')
    a = torch.tensor([[nan, 0.1, 0.9, 0.5], [0.2, nan, inf, -inf], [nan, nan, nan, 0.3]])
    m = topk_mask(a, 2)
    assert m[:2].tolist() == [[0., 0., 1., 1.], [1., 0., 1., 0.]]
    assert m[2, 3] == 1 and m.sum(-1).tolist() == [2., 2., 2.]

@pytest.mark.parametrize('ste', ['masked', 'identity'])
def test_nan_gate_never_takes_a_slot(ste):
    torch.manual_seed(0)
    l = MIDLayer(16, 0.25, alpha_dropout=0., ste=ste).eval()
    with torch.no_grad(): l.alpha_proj.weight[5] = float('nan')          # neuron 5's gate is NaN in every row
    x = torch.randn(64, 16)
    assert torch.sigmoid(l.alpha_proj(x))[:, 5].isnan().all()
    with tracking(l):
        ah = l.gate(x); _, m = l.select(x)
    assert (m[:, 5] == 0).all() and (m.sum(-1) == 4).all()             # never selected, exactly k per row
    assert ((ah > 0).sum(-1) == 4).all()
    assert l.stats()['anr'] == 0.25 and anr(l) == 0.25                  # ANR = k/d (was 3/16)
    assert l.stats()['selection_freq'][5] == 0

def test_nan_input_row_stays_in_its_row():
    torch.manual_seed(0)
    l = MIDLayer(16, 0.25, out_dim=8).eval()
    x = torch.randn(6, 16); x[2, 3] = float('nan')
    y = l(x)
    assert y[2].isnan().all()
    keep = [0, 1, 3, 4, 5]
    assert torch.isfinite(y[keep]).all()
    torch.testing.assert_close(y[keep], l(x[keep]))
    assert (l.gate(x).gt(0).sum(-1)[keep] == 2).all()                   # k = 0.25 * 8

def _deploy_model(variant='appendix_a'):
    torch.manual_seed(0)
    return nn.Sequential(MIDLayer(16, 0.5, out_dim=8, variant=variant), nn.ReLU(), nn.Linear(8, 3)).eval()

@pytest.mark.parametrize('variant', ['appendix_a', 'section_4_4'])
def test_onnx_export_matches_onnxruntime(variant, tmp_path):
    pytest.importorskip('onnx'); pytest.importorskip('onnxscript'); ort = pytest.importorskip('onnxruntime')
    m, path = _deploy_model(variant), tmp_path / 'midl.onnx'
    torch.onnx.export(m, (torch.randn(4, 16),), str(path), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim('batch')},))
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for n in (1, 7):                                                     # not the export sample's batch size 4
        x = torch.randn(n, 16)
        y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(y), m(x), atol=1e-5, rtol=1e-5)

def test_gate_is_a_part_kept_as_alpha_proj():
    torch.manual_seed(0)
    g = nn.Linear(8, 6, bias=False)
    l = MIDLayer(8, 2, out_dim=6, gate=g, alpha_dropout=0.)
    assert l.alpha_proj is g and 'alpha_proj.weight' in l.state_dict() and 'alpha_proj.bias' not in l.state_dict()
    x = torch.randn(5, 8); alpha = torch.sigmoid(g(x))
    torch.testing.assert_close(l.gate(x), alpha * topk_mask(alpha, 2))
    assert list(MIDLayer(8, 2).state_dict()) == ['step', 'f1.weight', 'f1.bias', 'f2.weight', 'f2.bias',
                                                 'alpha_proj.weight', 'alpha_proj.bias']   # saved models still load

def test_methods_live_in_the_class_body():
    for name in ('forward', 'gate', 'select', 'mix', 'stats', 'reset_stats', 'set_step', '_record', '_check_input'):
        assert getattr(MIDLayer, name).__qualname__ == f'MIDLayer.{name}', name
    assert 'patch' not in vars(midl.core)

def test_anr_without_gating_layers_is_one():
    assert anr(nn.Sequential(nn.Linear(4, 4), nn.ReLU())) == 1.0        # no gate: every neuron active (was nan)
    assert anr(MIDLayer(4, 2)) != anr(MIDLayer(4, 2))                   # gating layers, nothing counted yet: nan

def _frozen_bn_net():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), MIDLayer(4, 2)).train()
    net[1].eval()                                                        # a frozen part of a training model
    return net, [m.training for m in net.modules()]

def test_evaluating_restores_every_submodule():
    from midl.core import evaluating
    net, before = _frozen_bn_net()
    with evaluating(net) as m:
        assert m is net and not any(c.training for c in net.modules())
    assert [c.training for c in net.modules()] == before               # the BatchNorm stays in eval mode
    with pytest.raises(KeyError):
        with evaluating(net): raise KeyError('boom')
    assert [c.training for c in net.modules()] == before               # also after an exception
    net.eval()
    with evaluating(net): pass
    assert not any(c.training for c in net.modules())
