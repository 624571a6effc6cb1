"The paper's regime (issue 26): paper-sized backbones, validation-chosen epochs, speed settings recorded in every record."
import torch, pytest
from dataclasses import replace
from midl.experiment import RunSpec, run, record_spec
from midl.models import build_model, paper_backbone, PAPER_FLOPS, PAPER_DATA
from midl.metrics import executed_flops
from midl.plan import table8_specs, table2_specs, regime
from midl.speed import SPEED_FLAGS

SHAPES = dict(mnist=((1, 28, 28), 10), adult=((108,), 2), cifar10=((3, 32, 32), 10), cifar100=((3, 32, 32), 100), svhn=((3, 32, 32), 10))

@pytest.mark.parametrize('ds', sorted(PAPER_FLOPS))
def test_baseline_costs_the_papers_flops_within_10_percent(ds):
    if ds == 'imdb':
        T = PAPER_DATA['imdb']['max_len']
        m = build_model(None, 'dense', input_shape=(T,), n_classes=2, kind='text', vocab_size=20000, p=0.5, **paper_backbone(ds))
        x = torch.ones(1, T, dtype=torch.long)
    else:
        shape, k = SHAPES[ds]
        m, x = build_model(shape, 'dense', n_classes=k, p=0.5, **paper_backbone(ds)), torch.zeros(1, *shape)
    assert abs(executed_flops(m, x) / PAPER_FLOPS[ds] - 1) <= 0.10

def test_record_states_speed_and_the_epoch_kept():
    spec = replace(table8_specs(['digits'], 'smoke')[0], epochs=3, corruption=None)
    assert (spec.valid_frac, spec.select, spec.lr_schedule) == (0.1, 'valid_acc', 'onecycle')
    rec = run(spec)
    sp = rec['speed']
    assert sp['precision'] in ('fp32', 'bf16') and sp['flush_denormal'] is True and isinstance(sp['compile'], bool)
    assert sp['cpu_model'] and set(sp['cpu_flags']) <= set(SPEED_FLAGS) and sp['threads'] >= 1
    assert rec['training']['epochs_run'] == 3 and 1 <= rec['training']['epochs_chosen'] <= 3
    best = max(h['valid_acc'] for h in rec['history'])
    assert rec['history'][rec['training']['epochs_chosen'] - 1]['valid_acc'] == best
    assert rec['data']['n_valid'] == round(0.1 * 1347) and rec['data']['n_train'] == 1347 - rec['data']['n_valid']
    assert record_spec(rec).key == rec['key']

def test_forced_speed_settings_win():
    spec = RunSpec(dataset='digits', epochs=1, speed=dict(precision='fp32', compile=False, channels_last=False, flush_denormal=False))
    sp = run(spec)['speed']
    assert (sp['precision'], sp['compile'], sp['channels_last'], sp['flush_denormal'], sp['layout_source']) == ('fp32', False, False, False, 'parameters')

def test_table2_trains_on_all_its_samples():
    assert {(s.valid_frac, s.select) for s in table2_specs(scale='smoke')} == {(0., None)}

def test_old_records_keep_their_keys():
    # records made before the regime fields existed still find their runs: the key leaves out fields at their defaults
    import json
    from pathlib import Path
    recs = [json.loads(p.read_text()) for p in sorted(Path(__file__).parent.parent.glob('results/small/runs/*.json'))[:20]]   # the earlier, small-regime run
    assert recs and all(record_spec(r).key == r['key'] for r in recs)
    old = record_spec(recs[0])
    assert replace(old, **regime(old.dataset)).key != old.key and regime('mnist', 'small') == {}
