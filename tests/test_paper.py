"The paper as data: its numbers, and claims that find exactly the runs the run plans make."
import numpy as np, pandas as pd, pytest
from scipy import stats
from midl.paper import PAPER, CLAIMS, paper_table, side_by_side, verdict_table, t_interval, verdict
from midl.reproduce import table2_specs, table3_specs, table4_specs, table8_specs, write_summary, scale_settings

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
    metrics = dict(accuracy=v, f1_weighted=v, anr=v, flops=1e6 * v, latency_ms=v, memory_mb=v, ece=v, brier=v)
    if spec.corruption: metrics['robust_accuracy'] = v
    return dict(spec=spec.asdict(), key=spec.key, metrics=metrics)

def test_every_record_claim_finds_the_full_protocols_runs():
    "Each claim's filters select exactly the 5 paired seeds the full-scale run plans make, with the constructed difference."
    specs = (table8_specs(['mnist', 'cifar10', 'cifar100', 'svhn', 'adult', 'imdb'], 'full') + table2_specs(scale='full')
             + table3_specs(scale='full') + table4_specs(scale='full'))
    recs = [_record(s) for s in {s.key: s for s in specs}.values()]
    v = verdict_table(recs).set_index('claim')
    runs = v[[c.source == 'records' for c in CLAIMS]]
    seeds = [len(scale_settings('full', c.where[0]['dataset'])['seeds']) for c in CLAIMS if c.source == 'records']
    assert len(runs) == len(CLAIMS) - 8 and runs.n.tolist() == seeds and set(seeds) == {5, 10}   # MNIST: 10 seeds
    assert runs['mean'].tolist() == pytest.approx([1. if u == 'pp' else 0.01 for u in runs.unit])   # 0.01 = 1 point
    assert runs.sd.max() == pytest.approx(0, abs=1e-9)
    assert (v[[c.source != 'records' for c in CLAIMS]].verdict == 'not run here').all()   # no measured tables given

def test_interval_matches_scipy_and_each_verdict_has_a_case():
    d = [-0.3, 0.1, 0.4, 0.2, 0.9, 0.5]
    ci = t_interval(d)
    assert (ci['ci_low'], ci['ci_high']) == pytest.approx(stats.t.interval(0.95, 5, loc=np.mean(d), scale=stats.sem(d)))
    cases = {'consistent': (0.2, 0.6, 0.4), 'contradicted': (0.2, 0.6, 1.0), 'inconclusive': (-0.1, 0.6, 0.4)}
    assert {v: verdict(*c, n=5) for v, c in cases.items()} == {v: v for v in cases}
    assert verdict(-0.5, -0.5, -58.8, 5, by_construction=True) == 'by construction' and verdict(0, 1, 0.5, 0) == 'not run here'

def test_a_claim_from_two_records_end_to_end(tmp_path):
    recs = [dict(spec=dict(tag='table8', dataset='adult', layer=l, seed=s, label_noise=0.), metrics=dict(accuracy=a))
            for s, pair in enumerate([(.851, .846), (.850, .844)]) for l, a in zip(('dense', 'midl'), pair)]
    v = verdict_table(recs)
    row = v.set_index('claim').loc['UCI Adult: Accuracy (%)']
    assert row['mean'] == pytest.approx(-0.55) and row.paper == pytest.approx(0.6) and row.n == 2
    h = stats.t.ppf(0.975, 1) * np.std([-0.5, -0.6], ddof=1) / np.sqrt(2)          # 12.7 × 0.05
    assert (row.ci_low, row.ci_high) == pytest.approx((-0.55 - h, -0.55 + h))
    assert (row.verdict, row.excludes_zero, row.counted) == ('contradicted', False, True)   # +0.6 is outside; 0 is inside
    counts = write_summary(v, [], tmp_path, 'smoke')
    assert counts.to_dict() == {'consistent': 0, 'contradicted': 1, 'inconclusive': 0}
    csv = pd.read_csv(tmp_path/'verdicts.csv')
    assert {'table', 'claim', 'n', 'mean', 'sd', 'ci_low', 'ci_high', 'paper', 'verdict'} <= set(csv.columns)
    assert '| UCI Adult: Accuracy (%) | -0.55 [-1.19, +0.0853] pp | +0.6 pp | 2 | contradicted (ours includes 0) |' in ' '.join((tmp_path/'summary.md').read_text().split())
