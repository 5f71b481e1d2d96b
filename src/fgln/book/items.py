"""What the ledger can check: the kinds of claims, and every item of the paper and of the book.

:data:`PAPER_ITEMS` lists every figure and numbered result the chapters check (an item
without a claim is shown as *not yet* on the reproduction page); :data:`BOOK_ITEMS` the
book's own findings; :data:`KINDS` what a claim is.
"""

from __future__ import annotations

__all__ = ["KINDS", "PAPER_ITEMS", "BOOK_ITEMS"]

#: What a claim is: only "paper" claims decide whether a paper item is reproduced.
KINDS: dict[str, str] = {
    "paper": "a statement of the paper",
    "identity": "an identity or derivation check (exact, not statistical)",
    "book": "a control or finding of the book's own",
}

#: Every figure and numbered result of the paper, in the paper's order:
#: key -> (kind, label on the reproduction page, what the paper states).
PAPER_ITEMS: dict[str, tuple[str, str, str]] = {
    "fig1": ("figure", "Figure 1", r"top-15 $\log s_k$ of $J$ during training ($L=10$, $n=64$, $p=0.5$, rank-10 regression)"),
    "fig2": ("figure", "Figure 2", r"$\frac1L\log s_{1,L}\to\gamma_1$, with the correction $\gamma_1+\frac{d_0-d_1}{L}$; $p=1$ and $p=0.5$"),
    "fig3": ("figure", "Figure 3", r"top 64 of $\frac1L\log s_{k,L}$ at $L=20$ against $\gamma_k$ and $\gamma_k+\frac{d_{k-1}-d_k}{L}$"),
    "fig4a": ("figure", "Figure 4 (left)", r"top-30 $\log s_k(B_\ell)$ affine in $\ell$ at initialization ($L=100$, $p=0.5$)"),
    "fig4b": ("figure", "Figure 4 (right)", "the same after MNIST training: two clusters"),
    "fig5a": ("figure", "Figure 5 (init)", r"diagonal correlation of $U_J^\top U_{A_\ell}$ against $\ell$: high at low $\ell$"),
    "fig5b": ("figure", "Figure 5 (trained)", "the same after MNIST training: higher, and spread to larger l"),
    "fig6": ("figure", "Figure 6", r"$U_J^\top U_{A_\ell}$ at $p=1$; diagonal correlations 0.26, 0.49, 0.84"),
    "fig7": ("figure", "Figure 7", r"predicted against measured $s_1(t)$ during training"),
    "fig8": ("figure", "Figure 8", "trained against initial spectrum: only the top values move"),
    "fig9": ("figure", "Figure 9", "top 30 singular values at init, n=128, p=0.5 and p=1"),
    "fig10": ("figure", "Figure 10", r"diagonal correlation of the top-left $10\times10$ of $U_J^\top A_\ell A_\ell^\top U_J$: U-shaped in $\ell$"),
    "fig11": ("figure", "Figure 11", r"the same for $U_J^\top U_{A_\ell}$: decreasing in $\ell$"),
    "fig12": ("figure", "Figure 12", r"the same for $A_\ell A_\ell^\top$: increasing in $\ell$"),
    "prop4.5": ("result", "Proposition 4.5", r"balanced masked networks: $\dot s_k=-L s_k^{2-2/L}\langle\nabla_J\mathcal L, u_k v_k^\top\rangle$"),
    "thm5.3-exponents": ("result", "Theorem 5.3 (exponents)", r"$\frac1L\log s_{i,L}\to\gamma_i$ for $(r,p,\sigma)$-layers"),
    "thm5.3-correction": ("result", "Theorem 5.3 (correction)", r"$\mathbb E[\frac1L\log s_{i,L}]=\gamma_i+\frac{d_{i-1}-d_i}{L}+o(\frac1L)$"),
    "d_i": ("result", "Constants d_i", r"$d_i=-\mathbb E\log|\det\Omega^{i,i}|$"),
    "rem5.4": ("result", "Remark 5.4", r"closed form of $\gamma_i$"),
    "rem5.5": ("result", "Remark 5.5", r"the unnormalised approximation of $\gamma_i$ used in the comparisons"),
    "cor5.6": ("result", "Corollary 5.6", r"$s_{i+1,L}/s_{i,L}\to0$"),
    "thm6.1": ("result", "Theorem 6.1", r"$R_L^{r,r}\to I$ under spectral separation"),
    "rem6.2": ("result", "Remark 6.2", "clusters: block-diagonal limit"),
    "rem6.3": ("result", "Remark 6.3", r"$(S_J S_A^{-1})^{r,r}\to\Sigma_C$; scaled overlaps $\to T_C$, $(T_C^{-1})^\top$"),
    "thmD.1c": ("result", "Theorem D.1 (c)", r"decay rates of the entries of $U_L$"),
    "prop7.1": ("result", "Proposition 7.1", r"$\dot s_k\sim-e^{(2+2/L)\delta_k}L s_k^{2-2/L}\langle\nabla_J\mathcal L,u_k v_k^\top\rangle$"),
    "rem7.2": ("result", "Remark 7.2", "first-order version through triangular factors"),
    "appF": ("result", "Appendix F formula", "closed form of the diagonal correlation"),
    "mnist-accuracy": ("result", "Section 8 (MNIST)", "the fixed-gates network trains on MNIST"),
    "lemA.1": ("result", "Lemma A.1", r"$\nabla_{W_\ell}\mathcal L = D_\ell M_{\ell+1:L}^\top\nabla_J\mathcal L\,M_{1:\ell-1}^\top$, $M_k = D_k W_k D_{k-1}$, for any FGLN"),
    "lemA.1-step": ("result", "Lemma A.1 (proof)", r"$J = (M_{\ell+1:L} D_\ell)\,W_\ell\,M_{1:\ell-1}$"),
    "eqA.1": ("result", "Appendix A, equation (1)", r"the four terms of $\dot\Delta_\ell$ expanded through Lemma A.1"),
    "propA-conservation": ("result", "Appendix A (balance)", r"$\dot\Delta_\ell = 0$ under gradient flow, $\Delta_\ell = M_{\ell+1}^\top M_{\ell+1} - M_\ell M_\ell^\top$"),
    "propA-arora": ("result", "Appendix A (deep linear case)", "the rest of the proof as for deep linear networks"),
    "lemE.1": ("result", "Lemma E.1", r"$\dot J = -\sum_\ell M_{\ell+1:L} D_\ell M_{\ell+1:L}^\top\nabla_J\mathcal L\,M_{1:\ell-1}^\top M_{1:\ell-1}$, $M_k = D_k W_k$"),
    "lemE.1-step": ("result", "Lemma E.1 (proof)", r"$\dot J = \sum_\ell M_{\ell+1:L}\dot M_\ell M_{1:\ell-1}$, $\dot M_\ell = -D_\ell\nabla_{W_\ell}\mathcal L$"),
    "lemE.2": ("result", "Lemma E.2", r"$\dot s_k = u_k^\top \dot J v_k$ for any smooth $J$"),
    "proofE.2-first": ("result", "Appendix E.2 (first display)", r"$\dot s_k = -(\sum_\ell U^\top A_\ell A_\ell^\top\nabla_J\mathcal L\,B_\ell^\top B_\ell V)_{kk}$"),
    "proofE.2-aligned": ("result", "Appendix E.2 (alignment)", r"with (ii) exact, $\dot s_k = -\sum_\ell s_{k,A_\ell}^2 s_{k,B_\ell}^2 (U^\top\nabla_J\mathcal L V)_{kk}$"),
    "proofE.2-scaling": ("result", "Appendix E.2 (depth scaling)", r"(i) implies $s_{k,A_\ell}s_{k,B_\ell} = e^{(1+1/L)\delta_k}s_k^{1-1/L}$"),
    "proofE.3-expansion": ("result", "Appendix E.3 (expansion)", r"$\dot J = \sum_\ell A_{\ell+1}\dot M_\ell B_{\ell-1}$"),
    "proofE.3-factors": ("result", "Appendix E.3 (triangular factors)", r"$\dot s_k$ through $T^-_\ell$, $T^+_\ell$"),
    "proofE.3-scaling": ("result", "Appendix E.3 (depth scaling)", r"$s_{A_{\ell+1},k}s_{B_\ell,k} = e^{\delta_k-\gamma_k}s_k = e^{(1+1/L)\delta_k}s_k^{1-1/L}$"),
}

#: The book's own findings (beyond the paper), same layout: key -> (kind, label, statement).
BOOK_ITEMS: dict[str, tuple[str, str, str]] = {
    "relu-init-exponents": ("book", "ReLU J(x): depth scaling",
                            r"$\mathbb E[\frac1L\log s_i]$ of a ReLU network's $J(x)$ equals that of the independently gated product"),
    "relu-regimes": ("book", "ReLU J(x): three regimes",
                     r"moments ($L\ll n$), log-normal norms ($L\sim n$), Lyapunov spectrum ($L\gg n$)"),
    "relu-separation": ("book", "ReLU J(x): separation",
                        r"$s_{i+1}/s_i\to0$ at the rate $\gamma_{i+1}-\gamma_i$ (Corollary 5.6 for ReLU)"),
    "relu-alignment": ("book", "ReLU J(x): alignment",
                       r"$U_J$ and $U_{A_\ell}$ align per input as in the fixed-gates network"),
    "relu-modes": ("book", "ReLU: two inputs",
                   r"shared gates $1-\theta/\pi$ in the first layer, more in deeper ones; overlap of top singular subspaces"),
    "relu-trained": ("book", "ReLU trained on MNIST",
                     "clusters, alignment and accuracy of the trained ReLU block against chapter 8"),
}
