"""fgln.theory.exterior: compound matrices and wedges (Appendix B) against explicit minors,
the SVD, Cauchy-Binet and the Gram determinant."""
import itertools
import math

import pytest
import torch

from fgln.theory.exterior import (
    alternating_tensor,
    compound,
    elementary_tensor,
    subsets,
    tensor_power,
    wedge,
    wedge_inner,
)

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _minors(M: torch.Tensor, t: int) -> torch.Tensor:
    """The compound by explicit minors: itertools subsets, one determinant each."""
    rows = list(itertools.combinations(range(M.shape[0]), t))
    cols = list(itertools.combinations(range(M.shape[1]), t))
    out = torch.empty(len(rows), len(cols), dtype=M.dtype)
    for a, I in enumerate(rows):
        for b, J in enumerate(cols):
            out[a, b] = torch.linalg.det(M[list(I)][:, list(J)])
    return out


def test_subsets_are_lexicographic():
    assert subsets(4, 2).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    for n, t in [(1, 1), (5, 3), (6, 6), (7, 1)]:
        s = subsets(n, t)
        assert s.shape == (math.comb(n, t), t) and s.dtype == torch.int64
        assert [tuple(r) for r in s.tolist()] == list(itertools.combinations(range(n), t))
    assert subsets(3, 4).shape == (0, 4)


@pytest.mark.parametrize("m, n, t", [(4, 4, 2), (5, 5, 3), (5, 3, 2), (3, 6, 3), (6, 6, 1),
                                     (4, 4, 4)])
def test_compound_is_the_matrix_of_minors(m, n, t):
    M = torch.randn(m, n, generator=_gen(m * 100 + n * 10 + t), dtype=DT)
    C = compound(M, t)
    ref = _minors(M, t)
    assert C.shape == ref.shape == (math.comb(m, t), math.comb(n, t))
    torch.testing.assert_close(C, ref, rtol=0, atol=1e-12)


def test_compound_first_and_last_orders():
    M = torch.randn(5, 5, generator=_gen(1), dtype=DT)
    torch.testing.assert_close(compound(M, 1), M)
    assert compound(M, 1) is not M
    torch.testing.assert_close(compound(M, 5).reshape(()), torch.linalg.det(M))
    assert compound(M, 6).shape == (0, 0)
    assert compound(torch.randn(2, 4, dtype=DT), 3).shape == (0, 4)


@pytest.mark.parametrize("n, t", [(5, 2), (6, 3), (7, 4)])
def test_singular_values_are_products_of_t_singular_values(n, t):
    M = torch.randn(n, n, generator=_gen(7 * n + t), dtype=DT)
    U, s, Vh = torch.linalg.svd(M)
    C = compound(M, t)
    sc = torch.linalg.svdvals(C)
    prods = torch.tensor([math.prod(s[list(I)].tolist())
                          for I in itertools.combinations(range(n), t)], dtype=DT)
    torch.testing.assert_close(sc, prods.sort(descending=True).values, rtol=1e-12, atol=1e-12)
    # the operator norm is s_1 ... s_t, not s_1^t nor the next product
    top = math.prod(s[:t].tolist())
    assert abs(torch.linalg.matrix_norm(C, 2).item() - top) < 1e-12 * top
    assert abs(top - s[0].item() ** t) > 1e-3 and abs(sc[1].item() - top) > 1e-6


@pytest.mark.parametrize("n, t", [(5, 2), (6, 3)])
def test_top_singular_vectors_are_wedges_of_singular_vectors(n, t):
    M = torch.randn(n, n, generator=_gen(3 * n + t), dtype=DT)
    U, s, Vh = torch.linalg.svd(M)
    Uc, sc, Vch = torch.linalg.svd(compound(M, t))
    u_wedge = compound(U[:, :t], t)[:, 0]                     # u_1 ^ ... ^ u_t
    v_wedge = compound(Vh.mT[:, :t], t)[:, 0]
    assert abs(abs(u_wedge @ Uc[:, 0]).item() - 1) < 1e-10
    assert abs(abs(v_wedge @ Vch[0]).item() - 1) < 1e-10
    torch.testing.assert_close(u_wedge, wedge(U[:, :t]))
    # C_t(U) and C_t(V) diagonalise: C_t(M) = C_t(U) C_t(S) C_t(V)^T
    CS = compound(torch.diag(s), t)
    torch.testing.assert_close(compound(U, t) @ CS @ compound(Vh, t), compound(M, t),
                               rtol=0, atol=1e-11)


def test_cauchy_binet_transpose_and_orthogonal():
    g = _gen(11)
    A = torch.randn(3, 6, 5, generator=g, dtype=DT)
    B = torch.randn(3, 5, 4, generator=g, dtype=DT)
    for t in (1, 2, 3, 4):
        torch.testing.assert_close(compound(A @ B, t), compound(A, t) @ compound(B, t),
                                   rtol=0, atol=1e-11)
        torch.testing.assert_close(compound(A.mT, t), compound(A, t).mT)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=DT))
    for t in (2, 3):
        Cq = compound(Q, t)
        torch.testing.assert_close(Cq @ Cq.mT, torch.eye(math.comb(6, t), dtype=DT),
                                   rtol=0, atol=1e-12)
    # a singular matrix: Cauchy-Binet needs no inverse
    S = A[0] @ torch.diag(torch.tensor([1.0, 2.0, 0.0, 0.0, 3.0], dtype=DT)) @ B[0]
    torch.testing.assert_close(compound(S, 3), compound(A[0], 3) @ compound(
        torch.diag(torch.tensor([1.0, 2.0, 0.0, 0.0, 3.0], dtype=DT)), 3) @ compound(B[0], 3),
        rtol=0, atol=1e-11)


def test_wedge_inner_is_the_gram_determinant():
    g = _gen(5)
    X = torch.randn(4, 6, 3, generator=g, dtype=DT)
    Y = torch.randn(4, 6, 3, generator=g, dtype=DT)
    gram = torch.linalg.det(X.mT @ Y)
    torch.testing.assert_close(wedge_inner(X, Y), gram)
    torch.testing.assert_close((wedge(X) * wedge(Y)).sum(-1), gram, rtol=0, atol=1e-12)
    torch.testing.assert_close((alternating_tensor(X) * alternating_tensor(Y)).sum(-1), gram,
                               rtol=0, atol=1e-12)
    # the norm of a wedge is the volume: sqrt det(X^T X) = prod |R_ii| of a QR
    R = torch.linalg.qr(X, mode="r").R
    torch.testing.assert_close(wedge_inner(X, X).sqrt(),
                               R.diagonal(dim1=-2, dim2=-1).abs().prod(-1))
    # broadcasting of the leading dimensions
    assert wedge_inner(X, Y[0]).shape == (4,)
    # t > n: dependent vectors, the wedge vanishes
    Z = torch.randn(2, 3, generator=g, dtype=DT)
    assert wedge(Z).shape == (0,)
    assert abs(wedge_inner(Z, Z).item()) < 1e-12


def test_wedge_is_skew_and_matches_the_alternating_tensor():
    g = _gen(9)
    X = torch.randn(5, 3, generator=g, dtype=DT)
    w = wedge(X)
    torch.testing.assert_close(wedge(X[:, [1, 0, 2]]), -w)
    torch.testing.assert_close(wedge(X[:, [1, 2, 0]]), w)
    assert wedge(X[:, [0, 0, 2]]).abs().max() < 1e-12
    alt = alternating_tensor(X).reshape(5, 5, 5) * math.sqrt(6)
    for k, I in enumerate(itertools.combinations(range(5), 3)):
        assert abs(alt[I].item() - w[k].item()) < 1e-12


def test_tensor_power_is_the_kronecker_power():
    g = _gen(4)
    M = torch.randn(2, 3, 4, generator=g, dtype=DT)
    T = tensor_power(M, 3)
    assert T.shape == (2, 27, 64)
    torch.testing.assert_close(T[1], torch.kron(torch.kron(M[1], M[1]), M[1]))
    N = torch.randn(2, 4, 3, generator=g, dtype=DT)
    torch.testing.assert_close(tensor_power(M @ N, 2), tensor_power(M, 2) @ tensor_power(N, 2))
    X = torch.randn(3, 2, generator=g, dtype=DT)
    torch.testing.assert_close(elementary_tensor(X), torch.kron(X[:, 0], X[:, 1]))
    torch.testing.assert_close(tensor_power(M, 1), M)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_and_batching(dtype):
    M = torch.randn(2, 3, 5, 5, generator=_gen(2), dtype=DT)
    ref = compound(M, 2)
    C = compound(M.to(dtype), 2)
    assert C.dtype == dtype and C.shape == (2, 3, 10, 10)
    tol = {torch.float64: 1e-12, torch.float32: 1e-4}.get(dtype, 0.3)
    assert (C.to(DT) - ref).abs().max() < tol * ref.abs().max()
    # batched = one at a time
    torch.testing.assert_close(ref[1, 2], compound(M[1, 2], 2))
    X = torch.randn(3, 5, 2, generator=_gen(3), dtype=DT)
    g = wedge_inner(X.to(dtype), X.to(dtype))
    assert g.dtype == dtype and g.shape == (3,)


@pytest.mark.parametrize("call, error, name", [
    (lambda: compound([[1.0]], 1), TypeError, "M"),
    (lambda: compound(torch.ones(3, 3, dtype=torch.int64), 1), TypeError, "M"),
    (lambda: compound(torch.ones(3, 3, dtype=torch.complex128), 1), TypeError, "M"),
    (lambda: compound(torch.ones(3, 3), 2.0), TypeError, "t"),
    (lambda: compound(torch.ones(3, 3), 0), ValueError, "t"),
    (lambda: compound(torch.ones(3), 1), ValueError, "M"),
    (lambda: compound(torch.full((2, 2), float("nan")), 1), ValueError, "M"),
    (lambda: subsets(0, 1), ValueError, "n"),
    (lambda: subsets(3, True), TypeError, "t"),
    (lambda: wedge(torch.ones(3, 0)), ValueError, "X"),
    (lambda: wedge_inner(torch.ones(3, 2), torch.ones(4, 2)), ValueError, "X and Y"),
    (lambda: wedge_inner(torch.ones(2, 3, 2), torch.ones(3, 3, 2)), ValueError, "X"),
    (lambda: wedge_inner(torch.ones(3, 2), "Y"), TypeError, "Y"),
    (lambda: tensor_power(torch.ones(2, 2), -1), ValueError, "t"),
    (lambda: elementary_tensor(torch.ones(2, 2, dtype=torch.int32)), TypeError, "X"),
    (lambda: alternating_tensor(torch.ones(2)), ValueError, "X"),
])
def test_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()
