"""Mix quotas and the seeded threshold choice, without Spark."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.config import ConfigError, MixOutput, parse_config
from corpus.mix import plan


def test_shrink_keeps_every_ratio_and_names_the_binding_part():
    q, warnings = plan.quotas(
        {"text": 1_000, "code": 10_000}, {"text": 0.5, "code": 0.5}, {"text": 4, "code": 4}, "shrink", None
    )
    assert q == {"text": 4_000, "code": 4_000}
    assert "size set by part 'text'" in warnings[0]
    q, _ = plan.quotas(
        {"text": 1_000, "code": 10_000}, {"text": 0.5, "code": 0.5}, {"text": 4, "code": 4}, "shrink", 1_000
    )
    assert q == {"text": 500, "code": 500}


def test_redistribute_uses_up_a_short_part_and_shares_the_rest():
    q, warnings = plan.quotas(
        {"text": 1_000, "code": 10_000, "tool_doc": 10_000},
        {"text": 0.5, "code": 0.25, "tool_doc": 0.25},
        {"text": 1, "code": 1, "tool_doc": 1},
        "redistribute",
        None,
    )
    assert q["text"] == 1_000 and q["code"] == q["tool_doc"] == 10_000
    assert any("used up" in w for w in warnings)


def test_a_missing_part_is_dropped_with_a_warning():
    q, warnings = plan.quotas({"text": 100}, {"text": 0.5, "code": 0.5}, {"text": 1, "code": 1}, "shrink", None)
    assert q == {"text": 100} and "'code' has no tokens" in warnings[0]


def test_threshold_meets_a_quota_to_about_one_document():
    rng = np.random.default_rng(1)
    tokens = rng.integers(50, 5_000, 20_000)
    u = rng.random(20_000)
    target = 0.37 * tokens.sum()

    def hist(mask, values):
        out = {}
        for b, t in zip(values[mask], tokens[mask]):
            out[int(b)] = out.get(int(b), 0) + int(t)
        return out

    b1 = np.floor(u * plan.BUCKETS)
    level1 = hist(np.ones_like(u, bool), b1)

    def level2(b):
        mask = b1 == b
        return hist(mask, np.floor((u * plan.BUCKETS - b1) * plan.BUCKETS))

    t = plan.threshold(level1, level2, target)
    chosen = tokens[u < t].sum()
    assert abs(chosen - target) <= tokens.max()
    assert abs(chosen - target) / target < 1e-3


def test_whole_copies_and_remainder():
    assert plan.copies(2_500, 1_000) == (2, 500)
    assert plan.copies(300, 1_000) == (0, 300)


def test_config_validates_mix_outputs():
    with pytest.raises(ConfigError, match="ratios must have a positive share"):
        parse_config({"mix": {"outputs": {"a": {"ratios": {"text": 0}}}}})
    with pytest.raises(ConfigError, match="output names"):
        parse_config({"mix": {"outputs": {"a b": {"ratios": {"text": 1}}}}})
    with pytest.raises(ConfigError, match="mix.outputs.a.ratios.texts"):
        parse_config({"mix": {"outputs": {"a": {"ratios": {"texts": 1}}}}})
    with pytest.raises(ConfigError, match="ratios must sum to 1; these sum to 1.1"):
        parse_config({"mix": {"outputs": {"a": {"ratios": {"text": 0.6, "code": 0.5}}}}})
    with pytest.raises(ConfigError, match="max_epochs must be at least 1"):
        parse_config({"mix": {"outputs": {"a": {"ratios": {"text": 1}, "max_epochs": 0}}}})
    with pytest.raises(ConfigError, match="code 0.5"):
        parse_config({"mix": {"outputs": {"a": {"ratios": {"text": 1}, "max_epochs": {"code": 0.5}}}}})
    o = MixOutput(ratios={"text": 0.5, "code": 0.5}, max_epochs={"text": 1})
    assert o.shares() == {"code": 0.5, "text": 0.5} and o.epochs("text") == 1 and o.epochs("code") == 4
    assert MixOutput(ratios={"text": 0.3333, "code": 0.6667}).shares()["text"] == pytest.approx(0.3333)


def test_a_missed_target_makes_the_run_partial():
    from corpus.cli import partial
    from corpus.mix.stage import missed

    info = {
        "when_short": "shrink",
        "target": {"text": 0.5, "trajectory": 0.3, "tool_doc": 0.2},
        "achieved": {"text": 0.7, "tool_doc": 0.295, "code": 0.005},
    }
    got = missed(info, 0.01)
    assert got == {
        "text": {"target": 0.5, "achieved": 0.7},
        "tool_doc": {"target": 0.2, "achieved": 0.295},
        "trajectory": {"target": 0.3, "achieved": 0.0},
    }, "a part missing altogether is a miss; one within the tolerance (code) is not"
    assert missed({**info, "when_short": "redistribute"}, 0.01) == {}, "redistribute accepts misses by design"
    assert missed(info, 0.5) == {}
    lines = partial({"mix": {"extra": {"outputs": {"stage1": {**info, "missed": got}, "stage2": {"missed": {}}}}}})
    assert lines[0] == "mix output stage1: text 70.0% of the tokens, target 50.0%" and len(lines) == 3
    assert partial({"filter": {}}) == []
