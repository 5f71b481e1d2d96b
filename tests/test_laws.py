"""The paper's random objects as values (fgln.base.laws: LayerLaw, Product), the result type
(fgln.base.results.Result), and theory and simulation taking the same object."""
import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch

from fgln import LayerLaw, Product, Result
from fgln.base.statistics import conditional_stats
from fgln.initialization.depth_scaling import gate_ranks, wedge_log_norms
from fgln.products.sampling import iter_factors, sample_layers, sample_network
from fgln.products.spectra import (
    log_spectra_by_depth,
    stream_log_spectra,
    stream_lyapunov_estimates,
)
from fgln.theory.exponents import lyapunov_exponents

# ---------------------------------------------------------------------------------------
# LayerLaw
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, r"n must be an integer .*>= 1, got 0"),
    (dict(n=-3), ValueError, r"n must .*got -3"),
    (dict(n=4.5), TypeError, r"n must be an integer >= 1, got 4.5 \(float\)"),
    (dict(n=True), TypeError, r"n must .*got True \(bool\)"),
    (dict(n="4"), TypeError, r"n must .*\(str\)"),
    (dict(n=4, p=0.0), ValueError, r"p must be in \(0, 1\], got 0.0"),
    (dict(n=4, p=1.5), ValueError, r"p must be in \(0, 1\], got 1.5"),
    (dict(n=4, p=-0.5), ValueError, r"p must .*got -0.5"),
    (dict(n=4, p=float("nan")), ValueError, r"p must .*got nan"),
    (dict(n=4, p="0.5"), TypeError, r"p must be a number .*\(str\)"),
    (dict(n=4, sigma=0.0), ValueError, r"sigma must be a positive finite number .*got 0.0"),
    (dict(n=4, sigma=-1.0), ValueError, r"sigma must .*got -1.0"),
    (dict(n=4, sigma=float("nan")), ValueError, r"sigma must .*got nan"),
    (dict(n=4, sigma=float("inf")), ValueError, r"sigma must .*got inf"),
    (dict(n=4, sigma="1"), TypeError, r"sigma must .*\(str\)"),
    (dict(n=4, r=0), ValueError, r"r must be an integer in \[1, 4\], got 0"),
    (dict(n=4, r=5), ValueError, r"r must be an integer in \[1, 4\], got 5"),
    (dict(n=4, r=2.0), TypeError, r"r must .*got 2.0 \(float\)"),
    (dict(n=40, p=0.01, r=30), ValueError, r"r=30 is practically unreachable for n=40, p=0.01"),
])
def test_layer_law_refuses_bad_arguments_naming_them(kwargs, error, match):
    """A wrong type is a TypeError, a bad value a ValueError; the message names the argument,
    its range and the value given."""
    with pytest.raises(error, match=match):
        LayerLaw(**kwargs)


def test_layer_law_fields_and_defaults():
    law = LayerLaw(64)
    assert (law.n, law.p, law.sigma, law.r) == (64, 1.0, None, None)
    assert law.scale == 1 / math.sqrt(64) == 0.125  # sigma=None: the paper's 1/sqrt(n)
    assert law.sigma is None  # the default is kept as such, resolved only by scale
    assert LayerLaw(64, sigma=0.3).scale == 0.3
    gated = LayerLaw(10, 0.5, 0.2, 3)
    assert (gated.n, gated.p, gated.sigma, gated.r, gated.scale) == (10, 0.5, 0.2, 3, 0.2)
    # the fields are normalised: numpy integers to int, p to float
    law = LayerLaw(np.int64(6), 1, r=np.int64(2))
    assert type(law.n) is int and type(law.r) is int and type(law.p) is float
    assert law == LayerLaw(6, 1.0, r=2)
    # a law with r = n is reachable whenever p is large enough
    assert LayerLaw(4, 0.9, r=4).r == 4


def test_validation_helpers_behind_the_law():
    """check_sigma(n, sigma) resolves the default; check_network validates (n, L, p, sigma, r)
    as the law and its product do."""
    from fgln.base import validation

    assert validation.check_sigma(16, None) == 0.25 and validation.check_sigma(16, 0.3) == 0.3
    with pytest.raises(ValueError, match="sigma must"):
        validation.check_sigma(16, 0.0)
    assert validation.check_network(8, 3, 0.5, None, 2) == (8, 3, 0.5, 1 / math.sqrt(8), 2)
    with pytest.raises(ValueError, match="r must"):
        validation.check_network(8, 3, 0.5, None, 9)
    assert not hasattr(validation, "check_exponents")  # the law validates what it checked


def test_he_law_is_the_relu_scale():
    for n in (1, 7, 64):
        he = LayerLaw.he(n)
        assert he.scale == math.sqrt(2 / n) and he.p == 0.5 and he.r is None
        assert he == LayerLaw(n, 0.5, math.sqrt(2 / n))
    assert LayerLaw.he(8, 1.0).p == 1.0 and LayerLaw.he(8, 1.0).scale == 0.5
    with pytest.raises(ValueError, match="n must"):
        LayerLaw.he(0)
    with pytest.raises(TypeError, match="n must"):
        LayerLaw.he(8.0)
    with pytest.raises(ValueError, match="p must"):
        LayerLaw.he(8, 0.0)


def test_replace_is_a_validated_copy():
    law = LayerLaw(8, 0.5, r=2)
    ungated = law.replace(p=1.0)
    assert ungated == LayerLaw(8, 1.0, r=2) and law.p == 0.5  # the original is unchanged
    assert law.replace(r=None) == LayerLaw(8, 0.5)
    assert law.replace(sigma=0.1).scale == 0.1
    assert law.replace() == law
    with pytest.raises(ValueError, match="p must"):
        law.replace(p=0.0)
    with pytest.raises(ValueError, match="r must"):
        law.replace(r=9)
    with pytest.raises(ValueError, match="unreachable"):
        LayerLaw(40, 0.5, r=30).replace(p=0.01)
    with pytest.raises(TypeError):
        law.replace(depth=3)  # not a field


def test_laws_and_products_are_frozen_hashable_and_picklable():
    law = LayerLaw(8, 0.5, 0.3, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        law.p = 0.7
    prod = law.product(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prod.L = 6
    # equal values, equal hashes: usable as dict keys and set members
    assert law == LayerLaw(8, 0.5, 0.3, 2) and hash(law) == hash(LayerLaw(8, 0.5, 0.3, 2))
    assert LayerLaw(4, 1) == LayerLaw(4) and hash(LayerLaw(4, 1)) == hash(LayerLaw(4))
    assert len({law, LayerLaw(8, 0.5, 0.3, 2), law.replace(r=None)}) == 2
    assert {prod: "x"}[law.product(5)] == "x"
    assert prod != law.product(5, "fgln") and prod != law.product(6)
    # a law with sigma=None differs from one with the same scale given explicitly
    assert LayerLaw(4) != LayerLaw(4, sigma=0.5) and LayerLaw(4).scale == 0.5
    # pickled to worker processes and back unchanged
    assert pickle.loads(pickle.dumps(law)) == law
    assert pickle.loads(pickle.dumps(prod)) == prod


# ---------------------------------------------------------------------------------------
# Product
# ---------------------------------------------------------------------------------------


def test_product_fields_and_at_depth():
    law = LayerLaw(6, 0.5)
    prod = law.product(4)
    assert prod == Product(law, 4) == Product(law, 4, "section5")
    assert (prod.law, prod.L, prod.convention, prod.n) == (law, 4, "section5", 6)
    fg = law.product(4, "fgln")
    assert fg.convention == "fgln" and fg == Product(law, 4, convention="fgln")
    deeper = fg.at_depth(9)
    assert deeper == Product(law, 9, "fgln") and fg.L == 4  # law and convention kept
    assert type(Product(law, np.int64(3)).L) is int
    with pytest.raises(ValueError, match="L must"):
        prod.at_depth(0)


@pytest.mark.parametrize("args, error, match", [
    (("law", 3), TypeError, "law must be a LayerLaw, got str"),
    ((6, 3), TypeError, "law must be a LayerLaw, got int"),
    ((LayerLaw(6).product(2), 3), TypeError, "law must be a LayerLaw, got Product"),
    ((LayerLaw(6), 0), ValueError, r"L must .*got 0"),
    ((LayerLaw(6), -2), ValueError, r"L must .*got -2"),
    ((LayerLaw(6), 3.0), TypeError, r"L must .*\(float\)"),
    ((LayerLaw(6), True), TypeError, r"L must .*\(bool\)"),
    ((LayerLaw(6), 3, "other"), ValueError, "convention must be 'section5' or 'fgln', got 'other'"),
    ((LayerLaw(6), 3, "Section5"), ValueError, "convention must be"),
])
def test_product_refuses_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        Product(*args)


def test_at_depth_draws_the_leading_layers_of_the_deeper_product():
    """One stream draws W_1, D_1, W_2, D_2, ...: with the same seed the product at depth 3 is
    the first 3 layers of the product at depth 7 (Section 5: every layer gated)."""
    prod = LayerLaw(5, 0.6, r=2).product(7)
    deep = sample_layers(prod, 3, seed=4)
    assert torch.equal(sample_layers(prod.at_depth(3), 3, seed=4), deep[:, :3])
    w, d = sample_network(prod, 3, seed=4)
    w3, d3 = sample_network(prod.at_depth(3), 3, seed=4)
    assert torch.equal(w3, w[:, :3]) and torch.equal(d3, d[:, :3])



def test_iter_network_draws_only_the_columns_asked_for():
    """``columns=k``: W_l [replicates, n, k] with N(0, sigma^2) entries and the law's gates
    (the rank floor r kept); a bad count names the argument."""
    from fgln.products.sampling import iter_network

    law = LayerLaw(40, 0.3, r=5)
    (w, d), (w2, _) = iter_network(law.product(2), 500, columns=7, seed=1)
    assert w.shape == (500, 40, 7) and w2.shape == (500, 40, 7) and d.shape == (500, 40)
    assert set(d.unique().tolist()) <= {0.0, 1.0} and int(d.sum(-1).min()) >= 5
    # the variance of 140,000 entries: s.e. of the sample variance sqrt(2/N) sigma^2
    var, se = float(w.var()), math.sqrt(2 / w.numel()) * law.scale**2
    assert abs(var - law.scale**2) < 4 * se
    assert abs(float(d.mean()) - 0.3) < 0.05   # the floor r = 5 of 40 units barely moves p
    for bad, error in ((0, ValueError), (41, ValueError), (2.0, TypeError)):
        with pytest.raises(error, match="columns"):
            next(iter_network(law.product(1), 2, columns=bad))


# ---------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------


def test_result_is_a_mapping_with_attribute_access():
    r = Result(mean=np.arange(3.0), se=np.ones(3))
    assert isinstance(r, dict) and list(r) == ["mean", "se"] and len(r) == 2
    assert r.mean is r["mean"] and np.array_equal(r.se, np.ones(3))
    r.count = 7  # attribute and item are one thing
    assert r["count"] == 7 and "count" in r
    r["frac"] = 0.5
    assert r.frac == 0.5
    del r.count
    assert "count" not in r
    assert {"mean", "se", "frac"} <= set(dir(r))
    assert Result({"a": 1}, b=2) == {"a": 1, "b": 2}  # built like a dict, equal to one
    assert dict(r).keys() == r.keys()
    text = repr(Result(mean=np.zeros((2, 3)), label="x", n=4))
    assert text == "Result(mean: 2x3, label: 'x', n: 4)"


def test_result_missing_field_names_the_fields():
    r = Result(mean=np.zeros(2), se=np.zeros(2))
    with pytest.raises(AttributeError, match=r"this result has no field 'gamma'; its fields: "
                                             r"mean, se"):
        _ = r.gamma
    assert not hasattr(r, "gamma") and getattr(r, "gamma", None) is None
    with pytest.raises(KeyError):
        r["gamma"]


def test_result_pickles_and_unpacks_as_keyword_arguments():
    r = Result(mean=np.arange(4.0), se=np.full(4, 0.1), n=3)
    back = pickle.loads(pickle.dumps(r))
    assert type(back) is Result and back.keys() == r.keys()
    assert np.array_equal(back.mean, r.mean) and back.n == 3

    def summary(mean, se, n):
        return float(mean.sum()), float(se.max()), n

    assert summary(**r) == (6.0, 0.1, 3)
    assert {**r, "extra": 1}["extra"] == 1


def test_measurements_return_results():
    law = LayerLaw(5, 0.5, r=2)
    w = wedge_log_norms(law, 2, 50, seed=0)
    assert isinstance(w, Result) and set(w) == {"mean", "se", "gamma_mean", "gamma_se"}
    assert w.gamma_mean.shape == (2,)


# ---------------------------------------------------------------------------------------
# theory and simulation on the same object
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("law, k", [
    (LayerLaw(8), 4),                        # Ginibre layers, sigma = 1/sqrt(n)
    (LayerLaw(8, sigma=0.3), 4),             # an explicit scale
    (LayerLaw(8, 0.5, r=4), 4),              # (r, p)-gates, k = r
    (LayerLaw(8, 0.7, 0.3, r=3), 3),         # (r, p)-gates with an explicit scale
])
def test_exponents_against_the_wedge_increments_of_the_same_law(law, k):
    """Remark 5.4 / Lemma C.4: gamma_i = E log||Y e_1 ^ .. ^ Y e_i|| - E log||.. ^ Y e_{i-1}||
    for one layer Y of the law; and the wedge means are the partial sums of the gammas."""
    gamma = lyapunov_exponents(law, k)
    w = wedge_log_norms(law, k, 20000, seed=1)
    assert np.all(np.abs(w.gamma_mean - gamma) <= 5 * w.gamma_se + 1e-3), (
        (w.gamma_mean - gamma) / w.gamma_se)
    assert np.all(np.abs(w.mean - np.cumsum(gamma)) <= 5 * w.se + 1e-3)


def test_exponents_of_plain_p_gates_against_the_wedge_increments_of_the_same_law():
    """Plain p-gates (r=None): the wedge of the first i columns vanishes exactly when the gate
    has rank < i, and the increment of index i over the layers where it does not is the
    exponent of the (i, p)-layers, which lyapunov_exponents gives for r=None."""
    law, k = LayerLaw(8, 0.5), 4
    gamma = lyapunov_exponents(law, k)
    w = wedge_log_norms(law, k, 20000, seed=1)
    assert np.all(np.abs(w.gamma_mean - gamma) <= 5 * w.gamma_se + 1e-3), (
        (w.gamma_mean - gamma) / w.gamma_se)


def test_exponents_of_plain_p_gates_against_the_qr_estimates_of_the_same_law():
    """Plain p-gates (r=None): the exponent of index i is that of the (i, p)-layers, i.e. of
    the products whose every gate has rank >= i, exactly those with s_i > 0; the QR growth
    estimates of the surviving products agree with it index by index."""
    law, k = LayerLaw(8, 0.7), 4
    est = stream_lyapunov_estimates(law.product(10), 4000, seed=1).numpy()[:, :k]
    st = conditional_stats(est)
    assert np.all(st["frac"] > 0.4) and st["frac"][-1] < 0.9  # the conditioning is not vacuous
    gamma = lyapunov_exponents(law, k)
    assert np.all(np.abs(st["mean"] - gamma) <= 5 * st["se"] + 1e-3), (
        (st["mean"] - gamma) / st["se"])
    # the gated exponents differ from the ungated ones by far more than the error
    assert np.all(np.abs(gamma - lyapunov_exponents(law.replace(p=1.0), k)) > 20 * st["se"])


@pytest.mark.parametrize("prod", [
    LayerLaw(6, 0.5).product(20),
    LayerLaw(6, 0.5).product(20, "fgln"),
    LayerLaw(6, 0.7, r=3).product(15),
    LayerLaw(6, sigma=2.0).product(30),
])
def test_streamed_spectra_equal_the_sampled_product_exactly(prod):
    """stream_log_spectra draws the layers of sample_layers one at a time: the same numbers,
    bit for bit, at every depth (depths=None) and at chosen depths, for either convention."""
    layers = sample_layers(prod, 5, seed=3)
    assert torch.equal(stream_log_spectra(prod, 4, 5, seed=3),
                       log_spectra_by_depth(layers, k=4))
    assert torch.equal(stream_log_spectra(prod, None, 5, depths=[5, prod.L], seed=3),
                       log_spectra_by_depth(layers, depths=[5, prod.L]))


def test_gate_ranks_are_the_ranks_of_the_drawn_factors():
    prod = LayerLaw(7, 0.4, r=2).product(6)
    ms = torch.stack([m for _, m in iter_factors(prod, 9, seed=2)], 1)
    ranks = gate_ranks(prod, 9, seed=2)
    assert np.array_equal(ranks, ms.numpy()) and ranks.min() >= 2 and ranks.max() <= 7
