"The paper as data: its numbers, and claims that find exactly the runs the run plans make."
import pandas as pd, pytest
from midl.paper import PAPER, CLAIMS, paper_table, side_by_side, verdict_table
from midl.reproduce import table2_specs, table3_specs, table4_specs, table8_specs, write_summary

def test_paper_tables_as_data():
    assert set(PAPER.table) == {2, 3, 4, 5, 6, 7, 8}
    assert paper_table(8).loc[('IMDB', 'MID-L'), 'ANR (%)'] == 49.5
    assert paper_table(3).loc[('CIFAR-10', 'MID-L'), '40% noise'] == 55.8
    assert paper_table(4).loc[('CIFAR-10', 'Full MID-L'), 'ANR (%)'] == 41.8
    ours = pd.DataFrame({'ANR (%)': ['50.0']}, index=pd.MultiIndex.from_tuples([('IMDB', 'MID-L')], names=['dataset', 'model']))
    sbs = side_by_side(ours, 8)
    assert sbs.loc[('IMDB', 'MID-L'), 'ANR (%) (paper)'] == 49.5 and sbs.loc[('MNIST', 'MID-L'), 'ANR (%) (ours)'] == 'not run'

def _record(spec, gain=0.01):
    "A record of `spec` whose MID-L runs score `gain` above the others on every metric."
    v = 0.5 + (gain if spec.layer == 'midl' else 0.) + spec.seed / 100
    metrics = dict(accuracy=v, anr=v, flops=1e6 * v, latency_ms=v, memory_mb=v, ece=v, brier=v)
    if spec.corruption: metrics['robust_accuracy'] = v
    return dict(spec=spec.asdict(), key=spec.key, metrics=metrics)

def test_every_record_claim_finds_the_full_protocols_runs():
    "Each claim's filters select exactly the 5 paired seeds the full-scale run plans make, with the constructed difference."
    specs = (table8_specs(['mnist', 'cifar10', 'cifar100', 'svhn', 'adult', 'imdb'], 'full') + table2_specs(scale='full')
             + table3_specs(scale='full') + table4_specs(scale='full'))
    recs = [_record(s) for s in {s.key: s for s in specs}.values()]
    v = verdict_table(recs).set_index('claim')
    runs = v[[c.source == 'records' for c in CLAIMS]]
    assert len(runs) == len(CLAIMS) - 8 and (runs.n == 5).all(), runs[runs.n != 5]
    assert runs['mean'].tolist() == pytest.approx([1. if u == 'pp' else 0.01 for u in runs.unit])   # 0.01 = 1 point
    assert runs.sd.max() == pytest.approx(0, abs=1e-9)
    assert (v[[c.source != 'records' for c in CLAIMS]].verdict == 'not run here').all()   # no measured tables given

def test_a_claim_from_two_records_end_to_end(tmp_path):
    recs = [dict(spec=dict(tag='table8', dataset='adult', layer=l, seed=0, label_noise=0.), metrics=dict(accuracy=a))
            for l, a in [('dense', .851), ('midl', .846)]]
    v = verdict_table(recs)
    row = v.set_index('claim').loc['UCI Adult: Accuracy (%)']
    assert (row.n, row.verdict) == (1, 'not reproduced') and row['mean'] == pytest.approx(-0.5) and row.paper == pytest.approx(0.6)
    counts = write_summary(v, [], tmp_path, 'smoke')
    assert counts.to_dict() == {'not run here': len(CLAIMS) - 1, 'not reproduced': 1}
    assert '| UCI Adult: Accuracy (%) | -0.5 pp | +0.6 pp |' in ' '.join((tmp_path/'summary.md').read_text().split())
