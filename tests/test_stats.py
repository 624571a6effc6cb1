"The statistics of a claim: the paired summary, TOST and the one-sided tests, the verdict rule, Holm's adjustment and the seeds a claim needs, on data whose answer is known."
import numpy as np, pytest
from scipy import stats
from midl.stats import (KINDS, paired_summary, one_sided, tost, claim_tests, claim_verdict, decide, holm, holm_verdicts,
                        power_one_sided, seeds_needed)

def around(v, spread=0.1):
    "Five differences with mean `v` and sd 0.079 × spread / 0.1: a precise measurement of `v`."
    return [v + spread * e for e in (-1, -0.5, 0, 0.5, 1)]

WIDE = [-3., 4., 1., -2., 3.]                                               # mean 0.6, sd 3.05: nothing is decided at margin 1

def test_summary_is_the_paired_t_interval():
    d = [0.2, 0.5, -0.1, 0.4, 0.3]
    s = paired_summary(d, 0.9)
    assert (s['ci_low'], s['ci_high']) == pytest.approx(stats.t.interval(0.9, 4, loc=np.mean(d), scale=stats.sem(d)))
    assert s['sd'] == pytest.approx(np.std(d, ddof=1)) and s['n'] == 5
    assert np.isnan(paired_summary([1.])['ci_low']) and paired_summary([2.] * 4)['ci_low'] == 2.

@pytest.mark.parametrize('seed', range(10))
def test_tost_is_the_90_percent_interval_inside_the_margin(seed):
    d = np.random.default_rng(seed).normal(0.2, 0.8, 6)
    s = paired_summary(d, 0.9)
    assert (tost(d, -1, 1) < 0.05) == (-1 < s['ci_low'] and s['ci_high'] < 1)
    assert (one_sided(d, -1, 'greater') < 0.05) == (s['ci_low'] > -1)

def test_tost_known_answers():
    "Equivalence within ±1: a precise 0 must be consistent, a precise 3 contradicted, a wide spread inconclusive, one pair n=1."
    v = lambda d, **k: claim_verdict('equivalence', d, 1., **k)['verdict']
    assert v(around(0.)) == 'consistent' and tost(around(0.), -1, 1) < 1e-4
    assert v(around(3.)) == 'contradicted' and v(around(-3.)) == 'contradicted'
    assert v(WIDE) == 'inconclusive'
    assert v([0.]) == 'inconclusive (n=1)'

@pytest.mark.parametrize('kind, consistent, contradicted', [
    ('superiority', 1., 0.), ('non-inferiority', -0.5, -2.), ('equivalence', 0.5, 3.), ('stated value', 0.9, -0.7)])
def test_every_kind_reaches_every_verdict(kind, consistent, contradicted):
    v = lambda d: claim_verdict(kind, d, 1., paper=0.6)['verdict']
    assert (v(around(consistent)), v(around(contradicted)), v(WIDE), v([0.3])) == \
           ('consistent', 'contradicted', 'inconclusive', 'inconclusive (n=1)')

def test_direction_and_exact_values():
    "Costs: smaller is better (better=-1); differences equal for every seed are decided exactly."
    assert claim_verdict('superiority', around(-25., 1.), 10., better=-1)['verdict'] == 'consistent'
    r = claim_verdict('superiority', [9.9] * 5, 10., better=-1)                  # +9.9 % FLOPs on every seed
    assert (r['verdict'], r['p_for'], r['p_against']) == ('contradicted', 1., 0.)
    assert claim_tests('superiority', around(1.), 1.) == pytest.approx(
        (stats.ttest_1samp(around(1.), 0, alternative='greater').pvalue, stats.ttest_1samp(around(1.), 1, alternative='less').pvalue))
    with pytest.raises(ValueError, match='margin'): claim_tests('superiority', WIDE, 0.)
    with pytest.raises(ValueError, match='use one of'): claim_tests('better', WIDE, 1.)

def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then the running maximum
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]).tolist() == [1., 1.]
    p = holm([0.2, np.nan, 0.01]); assert np.isnan(p[1]) and p[[0, 2]] == pytest.approx([0.2, 0.02])

def test_holm_verdicts_known_answers():
    "A family of three claims (six tests): one beyond doubt stays consistent, one at p = 0.03 becomes inconclusive, a contradiction at 1e-4 stays."
    got = holm_verdicts([1e-6, 0.03, 0.9, np.nan], [0.9, 0.8, 1e-4, np.nan], [5, 5, 5, 1])
    assert got == ['consistent', 'inconclusive', 'contradicted', 'inconclusive (n=1)']
    assert [decide(f, a, 5) for f, a in [(1e-6, .9), (.03, .8), (.9, 1e-4)]] == ['consistent', 'consistent', 'contradicted']

def test_seeds_needed_is_monotone_in_sd_and_matches_the_noncentral_t():
    needs = [seeds_needed('non-inferiority', 0., sd, 1.) for sd in (0.2, 0.5, 1., 2., 4.)]
    assert needs == sorted(needs) and needs[0] < needs[-1]
    k = seeds_needed('superiority', 1., 1., 1.)
    assert power_one_sided(1., 1., k) >= 0.8 > power_one_sided(1., 1., k - 1)
    sim = np.random.default_rng(1).normal(1., 1., (20000, k))
    hit = np.mean(stats.ttest_1samp(sim, 0, axis=1, alternative='greater').pvalue < 0.05)
    assert hit == pytest.approx(power_one_sided(1., 1., k), abs=0.01)
    assert seeds_needed('non-inferiority', -1., 0.5, 1.) is None               # on the boundary: never decided
    assert seeds_needed('superiority', 0.3, np.nan, 1.) is None
    assert all(isinstance(seeds_needed(k, 0.2, 1., 1., paper=0.), int) for k in KINDS)
