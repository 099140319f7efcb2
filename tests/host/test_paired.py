"""McNemar's exact test against a hand computation, and the pairing of two entries' images."""

from __future__ import annotations

from math import comb

import pytest

from imagenet_hard.host import paired


def test_mcnemar_matches_the_binomial_sum_by_hand():
    # 1 image only A gets, 9 only B gets: two-sided, P(X ≤ 1) + P(X ≥ 9) for X ~ Bin(10, 1/2)
    by_hand = 2 * (comb(10, 0) + comb(10, 1)) / 2 ** 10
    assert by_hand == pytest.approx(0.021484375)
    assert paired.mcnemar_exact(1, 9) == pytest.approx(by_hand)
    assert paired.mcnemar_exact(9, 1) == pytest.approx(by_hand)
    # 2 against 6: 2 · (1 + 8 + 28) / 256
    assert paired.mcnemar_exact(2, 6) == pytest.approx(2 * 37 / 256)
    assert paired.mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert paired.mcnemar_exact(0, 0) == 1.0


def test_compare_counts_the_table_and_lists_examples():
    ids = [f"i{k}" for k in range(12)]
    a = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    b = [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    p = paired.compare(ids, a, ids, b)
    assert (p.n, p.both, p.a_only, p.b_only, p.neither) == (12, 3, 2, 7, 0)
    assert p.a_examples == ("i2", "i3") and p.b_examples[:2] == ("i4", "i5")
    assert p.p_value == pytest.approx(2 * (1 + 9 + 36) / 512)
    assert not p.significant


def test_compare_pairs_images_by_id_whatever_their_order():
    p = paired.compare(["x", "y", "z"], [1, 0, 1], ["z", "x", "w"], [0, 1, 1])
    assert (p.n, p.both, p.a_only, p.b_only) == (2, 1, 1, 0)     # x both, z only A; w, y unshared
    assert p.a_examples == ("z",)


def test_a_large_consistent_gap_is_significant():
    ids = list(range(400))
    a = [1] * 60 + [0] * 340
    b = [1] * 20 + [0] * 380
    assert paired.compare(ids, a, ids, b).significant


def test_mcnemar_is_scipys_binomtest_to_the_last_bit():
    from scipy.stats import binomtest

    pairs = [(a, b) for a in range(41) for b in range(41)] + [(400, 520), (1500, 1580),
                                                              (3, 3000), (700, 701)]
    for a, b in pairs:
        expected = 1.0 if a + b == 0 else binomtest(a, a + b, 0.5).pvalue
        assert paired.mcnemar_exact(a, b) == expected, (a, b)
