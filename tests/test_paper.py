"The paper as data: its numbers, its claims (each declaring setting, kind and margin), claims that find exactly the runs the run plans make, one count per comparison, and the verdict table's columns."
import numpy as np, pandas as pd, pytest
from scipy import stats
from midl.paper import (PAPER, CLAIMS, SETTINGS, INCONSISTENCIES, Claim, paper_table, side_by_side, verdict_table, verdict_counts,
                        verdict_counts_by_setting, verdicts_by_setting_markdown, t_interval)
from midl.stats import KINDS
from midl.plan import table2_specs, table3_specs, table4_specs, table8_specs, scale_settings
from midl.tables import write_summary

ISSUE_COLUMNS = {'table', 'claim', 'setting', 'n', 'mean', 'sd', 'ci_low', 'ci_high', 'paper', 'margin', 'verdict', 'counted'}

def test_paper_tables_as_data():
    assert set(PAPER.table) == set(range(2, 12))
    assert paper_table(8).loc[('IMDB', 'MID-L'), 'ANR (%)'] == 49.5
    assert paper_table(3).loc[('CIFAR-10', 'MID-L'), '40% noise'] == 55.8
    assert paper_table(4).loc[('CIFAR-10', 'Full MID-L'), 'ANR (%)'] == 41.8
    assert paper_table(10).loc[('CIFAR-10', 'CNN + MLP'), 'Latency (CPU ms)'] == 41.3
    ours = pd.DataFrame({'ANR (%)': ['50.0']}, index=pd.MultiIndex.from_tuples([('IMDB', 'MID-L')], names=['dataset', 'model']))
    sbs = side_by_side(ours, 8)
    assert sbs.loc[('IMDB', 'MID-L'), 'ANR (%) (paper)'] == 49.5 and sbs.loc[('MNIST', 'MID-L'), 'ANR (%) (ours)'] == 'not run'

def test_every_claim_declares_how_it_is_judged():
    "Setting (with its reason), kind and margin (with its justification) on every row; a row without them cannot be made."
    for c in CLAIMS:
        assert c.setting in SETTINGS and c.setting_reason, c.text
        assert c.kind in KINDS and c.margin > 0 and c.margin_why, c.text
        assert c.better in (1, -1)
    with pytest.raises(ValueError, match='lacks setting, setting_reason, kind, margin_why, margin'):
        Claim(8, 'a claim', 'accuracy', 'pp', ('MLP + Dropout', 'MNIST', 'Accuracy (%)', 'MID-L'))

def test_duplicates_point_at_a_counting_row():
    "One count per comparison: a row that repeats another names it, and that row counts."
    by_text = {c.text: c for c in CLAIMS}
    dup = [c for c in CLAIMS if c.counted_at]
    assert len(dup) == 11
    for c in dup:
        target = by_text[c.counted_at]
        assert not target.counted_at and not target.by_construction, c.text
    assert by_text['CIFAR-10, Clean: accuracy'].counted_at == 'CIFAR-10: Accuracy (%)'
    assert by_text['MID-L (§4.4) vs MLP + Dropout: FLOPs (M)'].counted_at == 'CIFAR-10: FLOPs (M)'

def test_dependent_claims_name_their_inconsistency():
    keys = {k for c in CLAIMS for k in c.inconsistency.split(', ') if k}
    assert keys <= set(INCONSISTENCIES.index)
    assert {'cifar10_accuracy', 'cifar10c_gain', 'smi', 'f1_f2', 'flops', 'label_noise', 'ablation', 'brier_form'} <= keys
    by_text = {c.text: c for c in CLAIMS}
    assert by_text['CIFAR-10-C (generated), severity 3: accuracy'].inconsistency == 'cifar10c_gain'

def _record(spec, gain=0.01):
    "A record of `spec` whose MID-L runs score `gain` above the others on every metric."
    v = 0.5 + (gain if spec.layer == 'midl' else 0.) + spec.seed / 100
    metrics = dict(accuracy=v, f1_weighted=v, anr=v, flops=1e6 * v, latency_ms=v, memory_mb=v, ece=v, brier=v, brier_mean=v / 10,
                   reliability=dict(confidence=[v], accuracy=[v], count=[100]))
    if spec.corruption: metrics['robust_accuracy'] = v
    return dict(spec=spec.asdict(), key=spec.key, metrics=metrics)

def _full_records():
    specs = (table8_specs(['mnist', 'cifar10', 'cifar100', 'svhn', 'adult', 'imdb'], 'full') + table2_specs(scale='full')
             + table3_specs(scale='full') + table4_specs(scale='full'))
    return [_record(s) for s in {s.key: s for s in specs}.values()]

def test_every_record_claim_finds_the_full_protocols_runs():
    "Each CPU claim's filters select exactly the paired seeds the full-scale run plans make, with the constructed difference; GPU claims find none."
    v = verdict_table(_full_records()).set_index('claim')
    cpu = [c for c in CLAIMS if c.source == 'records' and c.where[0].get('device') != 'cuda']
    runs = v.loc[[c.text for c in cpu]]
    seeds = [len(scale_settings('full', c.where[0]['dataset'])['seeds']) for c in cpu]
    assert runs.n.tolist() == seeds and set(seeds) == {5}                     # 5 seeds everywhere
    pp = runs[runs.unit == 'pp']
    assert pp['mean'].tolist() == pytest.approx([1.] * len(pp)) and pp.sd.max() == pytest.approx(0, abs=1e-9)
    gpu = [c.text for c in CLAIMS if c.source == 'records' and c.where[0].get('device') == 'cuda']
    assert len(gpu) == 7 and (v.loc[gpu].verdict == 'not run here').all()   # Table 8's latency column and Table 10's GPU: a GPU is needed
    assert (v[[c.source != 'records' for c in CLAIMS]].verdict == 'not run here').all()   # no measured tables given
    counted = v[v.counted]
    assert not counted.counted_at.any() and set(counted.index) >= {c.counted_at for c in CLAIMS if c.counted_at and v.loc[c.counted_at].n > 0}

def test_verdicts_csv_has_the_issue_columns_for_every_claim(tmp_path):
    v = verdict_table(_full_records())
    v.to_csv(tmp_path/'v.csv', index=False)
    back = pd.read_csv(tmp_path/'v.csv')
    assert ISSUE_COLUMNS | {'verdict_holm', 'seeds_needed', 'kind', 'counted_at', 'inconsistency', 'tested_against'} <= set(back.columns)
    assert len(back) == len(CLAIMS) and back.setting.notna().all() and (back.margin > 0).all()
    write_summary(v, [], tmp_path, 'full')
    assert ISSUE_COLUMNS <= set(pd.read_csv(tmp_path/'verdicts.csv').columns)

def test_a_claim_from_two_records_end_to_end():
    "UCI Adult accuracy, two seeds, 0.5 and 0.6 pp worse: non-inferior at 1 pp (the 90 % interval lies above −1)."
    recs = [dict(spec=dict(tag='table8', dataset='adult', layer=l, seed=s, label_noise=0.), metrics=dict(accuracy=a))
            for s, pair in enumerate([(.851, .846), (.850, .844)]) for l, a in zip(('dense', 'midl'), pair)]
    v = verdict_table(recs)
    row = v.set_index('claim').loc['UCI Adult: Accuracy (%)']
    assert row['mean'] == pytest.approx(-0.55) and row.paper == pytest.approx(0.6) and row.n == 2
    h = stats.t.ppf(0.95, 1) * np.std([-0.5, -0.6], ddof=1) / np.sqrt(2)          # 6.31 × 0.05
    assert (row.ci_low, row.ci_high) == pytest.approx((-0.55 - h, -0.55 + h))
    assert (row.verdict, row.counted, row.setting, row.kind) == ('consistent', True, 'matched', 'non-inferiority')
    assert row.p_for == pytest.approx(stats.t.sf(0.45 / 0.05, 1))               # t = (−0.55 + 1) / 0.05 = 9: p = 0.035
    assert row.verdict_holm == 'inconclusive'                                    # its two tests are the family: 2 × 0.035 > 0.05
    assert verdict_counts(v).to_dict() == {'consistent': 1, 'contradicted': 0, 'inconclusive': 0}
    assert verdict_counts_by_setting(v).loc['matched', 'claims'] == 1
    assert 'in the matched setting' in verdicts_by_setting_markdown(v)
    ci = t_interval([-0.5, -0.6])                                              # the report's 95 % interval for other tables
    assert (ci['ci_low'], ci['ci_high']) == pytest.approx(stats.t.interval(0.95, 1, loc=-0.55, scale=0.05))

@pytest.mark.parametrize('seed', range(3))
def test_holm_only_withdraws_verdicts(seed):
    "Holm's adjustment only raises p-values: each Holm verdict rests on a test that rejected alone too (a superiority claim whose two tests both rejected is consistent alone and may be contradicted after it)."
    rng = np.random.default_rng(seed)
    recs = [r for s in _full_records() for r in [dict(s, metrics={k: (x + rng.normal(0, 0.01) if isinstance(x, float) else x)
                                                              for k, x in s['metrics'].items()})]]
    v = verdict_table(recs)
    fam = v[v.counted & (v.n > 1)]
    assert (fam[fam.verdict_holm == 'consistent'].verdict == 'consistent').all()
    assert (fam[fam.verdict_holm == 'contradicted'].p_against < 0.05).all()
    assert ((fam.verdict_holm == fam.verdict) | (fam.verdict_holm == 'inconclusive') | (fam.kind == 'superiority')).all()
    assert verdict_counts(v, 'verdict_holm')['inconclusive'] >= verdict_counts(v)['inconclusive']
