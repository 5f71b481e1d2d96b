"""What the ledger can check: the kinds of claims, and every item of the paper and of the book.

:data:`PAPER_ITEMS` lists every figure and numbered statement of the paper and of its
appendices; :data:`NOT_CHECKED` says why an item that no chapter states a claim for is not
checked numerically (the reproduction page shows it as *not checked* with that reason, and
an item with neither as *not yet*); :data:`BOOK_ITEMS` the book's own findings;
:data:`KINDS` what a claim is.
"""

from __future__ import annotations

__all__ = ["KINDS", "PAPER_ITEMS", "NOT_CHECKED", "BOOK_ITEMS"]

#: What a claim is: only "paper" claims decide whether a paper item is reproduced.
KINDS: dict[str, str] = {
    "paper": "a statement of the paper",
    "identity": "an identity or derivation check (exact, not statistical)",
    "book": "a control or finding of the book's own",
}

#: Every definition, theorem (and each of its parts), lemma, proposition, corollary, remark,
#: figure and numbered equation of the paper and of its appendices, in the paper's order:
#: key -> (kind, label on the reproduction page, what the paper states). The kind is "figure"
#: or "result" (every numbered statement: definitions, remarks and equations included).
PAPER_ITEMS: dict[str, tuple[str, str, str]] = {
    # Section 1
    "fig1": ("figure", "Figure 1", r"top-15 $\log s_k$ of $J$ during training ($L=10$, $n=64$, $p=0.5$, rank-10 regression)"),
    # Section 4
    "def4.1": ("result", "Definition 4.1", r"a fixed-gates linear network (FGLN) of depth $L$ is $J = W_L D_{L-1} W_{L-1} \cdots D_1 W_1$, with trainable $W_\ell \in \mathbb R^{n_\ell \times n_{\ell-1}}$ and fixed diagonal gates $D_\ell$; *masked* when the gates are $0/1$, *square of width $n$* when every $W_\ell$ is $n \times n$"),
    "rem4.2": ("result", "Remark 4.2", r"layers may be rectangular; singular values of partial products then follow the usual SVD of a rectangular matrix"),
    "def4.3": ("result", "Definition 4.3", r"a multi-mode FGLN: networks $J^{(m)} = W_L D^{(m)}_{L-1} W_{L-1} \cdots D^{(m)}_1 W_1$, $m \in \mathcal M$, sharing their weights, with a mode function $\sigma$; it computes $x \mapsto J^{(\sigma(x))} x$"),
    "rem4.4": ("result", "Remark 4.4", r"a bias-free MLP is a multi-mode FGLN whose mode function $\sigma$ (its activation pattern) is trainable"),
    "prop4.5": ("result", "Proposition 4.5", r"balanced masked networks: $\dot s_k=-L s_k^{2-2/L}\langle\nabla_J\mathcal L, u_k v_k^\top\rangle$"),
    "def4.6": ("result", "Definition 4.6", r"$\varepsilon$-depth scaling at rank $r$: there are $(\gamma_k, \delta_k)_{k \le r}$ with $\lvert \log s_k(M_{1:\ell}) - (\ell \gamma_k + \delta_k) \rvert \le \varepsilon$ for every $\ell \le L$ and $k \le r$"),
    "def4.7": ("result", "Definition 4.7", r"$\varepsilon$-spectral separation at rank $r$: $s_{k+1}(M) / s_k(M) < \varepsilon$ for every $k \le r$, with $s_{n+1}(M) := 0$"),
    # Section 5
    "def5.1": ("result", "Definition 5.1", r"a $\sigma$-Ginibre matrix has i.i.d. $\mathcal N(0, \sigma^2)$ entries; a $p$-gate is diagonal with i.i.d. Bernoulli($p$) entries"),
    "def5.2": ("result", "Definition 5.2", r"an $(r, p)$-gate is a $p$-gate conditioned on rank $\ge r$; an $(r, p, \sigma)$-layer is $D W$ with $D$ an $(r, p)$-gate and $W$ an independent $\sigma$-Ginibre matrix; (the text after it) each diagonal entry of an $(r, p)$-gate is Bernoulli($p$), the entries not independent, and an $(r, p)$-gate is sampled by redrawing $p$-gates until the rank is $\ge r$"),
    "thm5.3-exponents": ("result", "Theorem 5.3 (exponents)", r"$\frac1L\log s_{i,L}\to\gamma_i$ for $(r,p,\sigma)$-layers"),
    "thm5.3-correction": ("result", "Theorem 5.3 (correction)", r"$\mathbb E[\frac1L\log s_{i,L}]=\gamma_i+\frac{d_{i-1}-d_i}{L}+o(\frac1L)$"),
    "d_i": ("result", "Constants d_i", r"$d_i=-\mathbb E\log|\det\Omega^{i,i}|$"),
    "rem5.4": ("result", "Remark 5.4", r"closed form of $\gamma_i$"),
    "rem5.5": ("result", "Remark 5.5", r"the unnormalised approximation of $\gamma_i$ used in the comparisons"),
    "cor5.6": ("result", "Corollary 5.6", r"$s_{i+1,L}/s_{i,L}\to0$"),
    # Section 6
    "thm6.1": ("result", "Theorem 6.1", r"$R_L^{r,r}\to I$ under spectral separation"),
    "rem6.2": ("result", "Remark 6.2", "clusters: block-diagonal limit"),
    "rem6.3": ("result", "Remark 6.3", r"$(S_J S_A^{-1})^{r,r}\to\Sigma_C$; scaled overlaps $\to T_C$, $(T_C^{-1})^\top$"),
    # Section 7
    "prop7.1": ("result", "Proposition 7.1", r"$\dot s_k\sim-e^{(2+2/L)\delta_k}L s_k^{2-2/L}\langle\nabla_J\mathcal L,u_k v_k^\top\rangle$"),
    "rem7.2": ("result", "Remark 7.2", "first-order version through triangular factors"),
    # Section 8
    "mnist-accuracy": ("result", "Section 8 (MNIST)", "the fixed-gates network trains on MNIST"),
    "fig2": ("figure", "Figure 2", r"$\frac1L\log s_{1,L}\to\gamma_1$, with the correction $\gamma_1+\frac{d_0-d_1}{L}$; $p=1$ and $p=0.5$"),
    "fig3": ("figure", "Figure 3", r"top 64 of $\frac1L\log s_{k,L}$ at $L=20$ against $\gamma_k$ and $\gamma_k+\frac{d_{k-1}-d_k}{L}$"),
    "fig4a": ("figure", "Figure 4 (left)", r"top-30 $\log s_k(B_\ell)$ affine in $\ell$ at initialization ($L=100$, $p=0.5$)"),
    "fig4b": ("figure", "Figure 4 (right)", "the same after MNIST training: two clusters"),
    "fig5a": ("figure", "Figure 5 (init)", r"diagonal correlation of $U_J^\top U_{A_\ell}$ against $\ell$: high at low $\ell$"),
    "fig5b": ("figure", "Figure 5 (trained)", "the same after MNIST training: higher, and spread to larger l"),
    "fig6": ("figure", "Figure 6", r"$U_J^\top U_{A_\ell}$ at $p=1$; diagonal correlations 0.26, 0.49, 0.84"),
    # Appendix A
    "lemA.1": ("result", "Lemma A.1", r"$\nabla_{W_\ell}\mathcal L = D_\ell M_{\ell+1:L}^\top\nabla_J\mathcal L\,M_{1:\ell-1}^\top$, $M_k = D_k W_k D_{k-1}$, for any FGLN"),
    "lemA.1-step": ("result", "Lemma A.1 (proof)", r"$J = (M_{\ell+1:L} D_\ell)\,W_\ell\,M_{1:\ell-1}$"),
    "eqA.1": ("result", "Appendix A, equation (1)", r"the four terms of $\dot\Delta_\ell$ expanded through Lemma A.1"),
    "propA-conservation": ("result", "Appendix A (balance)", r"$\dot\Delta_\ell = 0$ under gradient flow, $\Delta_\ell = M_{\ell+1}^\top M_{\ell+1} - M_\ell M_\ell^\top$"),
    "propA-arora": ("result", "Appendix A (deep linear case)", "the rest of the proof as for deep linear networks"),
    # Appendix B
    "defB.1": ("result", "Definition B.1", r"tensor power $\bigotimes^t V$: multilinear symbols, basis $e_I$, dimension $n^t$, inner product $\prod_i\langle v_i,w_i\rangle$; $e_1\otimes e_1+e_2\otimes e_2$ not elementary; $v\otimes w\neq w\otimes v$ unless $v=w$"),
    "defB.2": ("result", "Definition B.2", r"$(\bigotimes^t M)_{I,J}=\prod_k m_{i_k,j_k}$, multiplicative; singular values $\prod_{i\in I}s_i$, singular vectors exactly the $u_{i_1}\otimes\cdots\otimes u_{i_t}$, top $s_1^t$"),
    "defB.3": ("result", "Definition B.3", r"exterior power $\bigwedge^t V$: alternating symbols, basis $e_I$ over increasing $I$, dimension $\binom nt$, inner product $\det(\langle v_i,w_j\rangle)$; $e_1\wedge e_2+e_3\wedge e_4$ not elementary"),
    "defB.4": ("result", "Definition B.4", r"$(\bigwedge^t M)_{I,J}=\det M^{I,J}$, multiplicative; singular values $\prod_{i\in I}s_i$, singular vectors exactly the $u_{i_1}\wedge\cdots\wedge u_{i_t}$, top $s_1\cdots s_t$"),
    "remB.5": ("result", "Remark B.5", r"exterior powers reach the singular values below the top one"),
    "secB.2.3-span": ("result", "Appendix B.2.3 (span)", r"$v_1\wedge\cdots\wedge v_t=a\,w_1\wedge\cdots\wedge w_t$ iff the spans agree"),
    "secB.2.3-angle": ("result", "Appendix B.2.3 (angle)", r"the inner product of two wedges is zero iff the spans are at right angle"),
    "secB.2.3-alignment": ("result", "Appendix B.2.3 (alignment)", r"unit $v_{i,L}, w_i$: $v_{1,L}\wedge\cdots\wedge v_{t,L}\to\pm w_1\wedge\cdots\wedge w_t$ iff $E_L$ aligns with $F$"),
    # Appendix C
    "thmC.1": ("result", "Theorem C.1", r"for i.i.d. $Y_i$ with $\mathbb E \log^+ \Vert Y_1 \Vert < \infty$ and $J_L = Y_L \cdots Y_1 \ne 0$ almost surely, $\frac1L \log s_{i,L} \to \gamma_i$ almost surely, with $\gamma_1 \ge \dots \ge \gamma_n$ in $[-\infty, \infty)$; if moreover $Y_1 U$ has the law of $Y_1$ for every orthogonal $U$, then $\gamma_1 + \dots + \gamma_i = \mathbb E \log \Vert Y_1 e_1 \wedge \dots \wedge Y_1 e_i \Vert$"),
    "lemC.2": ("result", "Lemma C.2", r"i.i.d. $(r, p, \sigma)$-layers satisfy the assumptions of Theorem C.1: $Y_1 U$ has the law of $Y_1$, $\mathbb E \log^+ \Vert Y_1 \Vert < \infty$, and $J_L$ has rank $\ge r$ (so is nonzero) almost surely"),
    "lemC.3": ("result", "Lemma C.3", r"for $Y = D W$, $W$ $\sigma$-Ginibre and $D$ a $0/1$ diagonal of rank $t$: $\mathbb E \log \Vert Y e_1 \wedge \dots \wedge Y e_i \Vert = \frac i2 \ln(2\sigma^2) + \frac12 \sum_{k=1}^{i} \psi\big(\frac{t-k+1}{2}\big)$ for $i \le t$ (printed with $r$ in place of $t$), $-\infty$ beyond (a Wishart log-determinant)"),
    "lemC.4": ("result", "Lemma C.4", r"for an $(r, p, \sigma)$-layer, $\lambda_i = \mathbb E \log \Vert Y_1 e_1 \wedge \dots \wedge Y_1 e_i \Vert = \frac i2 \ln(2\sigma^2) + \frac{\sum_{t=r}^{n} \binom nt p^t (1-p)^{n-t} \sum_{k=1}^{i} \psi(\frac{t-k+1}{2})}{2 \sum_{m=r}^{n} \binom nm p^m (1-p)^{n-m}}$ for $i \le r$, $-\infty$ for $i > r$; the denominator is close to 1 when $r \ll np$"),
    "lemC.5": ("result", "Lemma C.5", r"$\gamma_i = \lambda_i - \lambda_{i-1}$ is the closed form of Remark 5.4 (Remark 5.5's when $r \ll np$), and $\gamma_i > \gamma_{i+1}$ for $i < r$ since $\psi$ is increasing"),
    "lemC.6": ("result", "Lemma C.6", r"if $A_L$ and $B_L$ separate ($s_{i+1}/s_i \to 0$ for $i \le r$) and $V^A_L U^B_L$ is Haar and independent of their singular values, then for $t \le r$, $\mathbb E \log \frac{\Vert \wedge^t (A_L B_L) \Vert}{\Vert \wedge^t A_L \Vert \, \Vert \wedge^t B_L \Vert} \to \mathbb E \log \lvert \det \Omega^{t,t} \rvert \le 0$"),
    "lemC.7": ("result", "Lemma C.7", r"if $u_{p+q} + d(p,q) = u_p + u_q$ with $d(p,q) \ge 0$ and $d(p,q) \to d$, then $u_L / L$ has a finite limit $u$ and $\frac1L u_L = u + \frac dL + o(\frac1L)$"),
    # Appendix D
    "thmD.1a": ("result", "Theorem D.1 (a)", r"for $X_L = S_L C S_L$, $S_L$ diagonal non-increasing with $s_{i+1,L}/s_{i,L} \to 0$ ($i \le r$) and $C$ symmetric with $C^{r,r}$ positive definite: the singular vector $u_{i,L}$ of $X_L = U_L \Sigma_L U_L^\top$ tends to $\pm e_i$ for $i \le r$"),
    "thmD.1b": ("result", "Theorem D.1 (b)", r"$\sigma_{i,L} / s_{i,L}^2 \to \det C^{i,i} / \det C^{i-1,i-1} =: \ell_i$ for $i \le r$ (with $\det C^{0,0} = 1$)"),
    "thmD.1c": ("result", "Theorem D.1 (c)", r"decay rates of the entries of $U_L$"),
    "remD.2": ("result", "Remark D.2", r"(b) and (c) amount to $(S_L^{r,r})^{-1} \Sigma_L (S_L^{r,r})^{-1} \to \Sigma_C$, $(S_L^{r,r})^{-1} U_L^{r,r} S_L^{r,r} \to T_C$ and $S_L^{r,r} U_L^{r,r} (S_L^{r,r})^{-1} \to (T_C^{-1})^\top$"),
    "remD.3": ("result", "Remark D.3", r"(c) extends to $i \le r < j$: $e_j^\top u_{i,L} = K_{j,i}\, s_{i,L}/s_{j,L} + o(s_{i,L}/s_{j,L})$ for a constant $K_{j,i}$ whose relation to $C$ is not given"),
    "lemD.4": ("result", "Lemma D.4", r"a symmetric $M_L \to e_1 e_1^\top$ has its largest eigenvalue $\to 1$ with eigenvector $\to \pm e_1$, and all its other eigenvalues $\to 0$"),
    "lemD.5": ("result", "Lemma D.5", r"statements (a) and (b) of Theorem D.1 hold, and $\sigma_{r+1,L} / \sigma_{r,L} \to 0$"),
    "lemD.6": ("result", "Lemma D.6", r"statement (c) of Theorem D.1 holds: $(S_L^{r,r})^{-1} U_L^{r,r} S_L^{r,r} \to T_C$, the unit lower-triangular Cholesky factor of $C^{r,r}$"),
    "eq2": ("result", "Equation (2)", r"$C = S_L^{-1} X_L S_L^{-1} = (S_L^{-1} U_L S_L)(S_L^{-1} \Sigma_L S_L^{-1})(S_L U_L^\top S_L^{-1})$"),
    "lemD.7": ("result", "Lemma D.7", r"with $Q_L$ the unit lower-triangular part of $(S_L^{-1} U_L S_L)^{r,r}$, $C^{r,r} = Q_L \Sigma_C Q_L^\top + o(1)$"),
    # Appendix E
    "lemE.1": ("result", "Lemma E.1", r"$\dot J = -\sum_\ell M_{\ell+1:L} D_\ell M_{\ell+1:L}^\top\nabla_J\mathcal L\,M_{1:\ell-1}^\top M_{1:\ell-1}$, $M_k = D_k W_k$"),
    "lemE.1-step": ("result", "Lemma E.1 (proof)", r"$\dot J = \sum_\ell M_{\ell+1:L}\dot M_\ell M_{1:\ell-1}$, $\dot M_\ell = -D_\ell\nabla_{W_\ell}\mathcal L$"),
    "lemE.2": ("result", "Lemma E.2", r"$\dot s_k = u_k^\top \dot J v_k$ for any smooth $J$"),
    "proofE.2-first": ("result", "Appendix E.2 (first display)", r"$\dot s_k = -(\sum_\ell U^\top A_\ell A_\ell^\top\nabla_J\mathcal L\,B_\ell^\top B_\ell V)_{kk}$"),
    "proofE.2-aligned": ("result", "Appendix E.2 (alignment)", r"with (ii) exact, $\dot s_k = -\sum_\ell s_{k,A_\ell}^2 s_{k,B_\ell}^2 (U^\top\nabla_J\mathcal L V)_{kk}$"),
    "proofE.2-scaling": ("result", "Appendix E.2 (depth scaling)", r"(i) implies $s_{k,A_\ell}s_{k,B_\ell} = e^{(1+1/L)\delta_k}s_k^{1-1/L}$"),
    "proofE.3-expansion": ("result", "Appendix E.3 (expansion)", r"$\dot J = \sum_\ell A_{\ell+1}\dot M_\ell B_{\ell-1}$"),
    "proofE.3-factors": ("result", "Appendix E.3 (triangular factors)", r"$\dot s_k$ through $T^-_\ell$, $T^+_\ell$"),
    "proofE.3-scaling": ("result", "Appendix E.3 (depth scaling)", r"$s_{A_{\ell+1},k}s_{B_\ell,k} = e^{\delta_k-\gamma_k}s_k = e^{(1+1/L)\delta_k}s_k^{1-1/L}$"),
    # Appendix F
    "appF": ("result", "Appendix F formula", "closed form of the diagonal correlation"),
    # Appendix G
    "fig7": ("figure", "Figure 7", r"predicted against measured $s_1(t)$ during training"),
    "fig8": ("figure", "Figure 8", "trained against initial spectrum: only the top values move"),
    "fig9": ("figure", "Figure 9", "top 30 singular values at init, n=128, p=0.5 and p=1"),
    "fig10": ("figure", "Figure 10", r"diagonal correlation of the top-left $10\times10$ of $U_J^\top A_\ell A_\ell^\top U_J$: U-shaped in $\ell$"),
    "fig11": ("figure", "Figure 11", r"the same for $U_J^\top U_{A_\ell}$: decreasing in $\ell$"),
    "fig12": ("figure", "Figure 12", r"the same for $A_\ell A_\ell^\top$: increasing in $\ell$"),
}

#: Why an item of :data:`PAPER_ITEMS` that no chapter states a claim for is not checked
#: numerically: key -> reason (shown on the reproduction page in place of *not yet*).
NOT_CHECKED: dict[str, str] = {
    "def4.1": "a definition, not a statement: built as `FixedGatesNetwork` and illustrated in "
              "chapter 4; every chapter's networks are of this form",
    "rem4.2": "a convention (rectangular layers are allowed), not a statement: chapter 4's "
              "example and the input and output layers of the MNIST model of chapter 8 use it",
    "def4.3": "a definition, not a statement: illustrated in chapter 4 and used in chapter 9, "
              "where a ReLU network is a multi-mode network with one gate pattern per input",
    "rem4.4": "an identity that holds by construction (the gates of a bias-free ReLU network are "
              "its activation pattern): chapter 4 prints its rounding error on random inputs "
              "and chapter 9 computes ReLU Jacobians this way",
    "def4.6": r"a definition, not a statement: chapter 4 shows the fitted $\varepsilon$ of a random "
              "network; depth scaling itself is measured under Figures 4 and 9 and Proposition "
              "7.1 (assumption i)",
    "def4.7": "a definition, not a statement: chapter 4 shows the ratios of a random network; "
              "separation itself is measured under Figure 1 and Corollary 5.6",
}

#: The book's own findings (beyond the paper), same layout: key -> (kind, label, statement).
BOOK_ITEMS: dict[str, tuple[str, str, str]] = {
    # chapter 2: results the paper cites (Section 2), checked on the package's objects
    "rw-newman": ("book", "Newman: Gaussian exponents",
                  r"the Lyapunov exponents of products of $\sigma$-Ginibre matrices are $\gamma_i = \ln\sigma + \frac12[\ln 2 + \psi(\frac{n-i+1}2)]$ (Newman 1986)"),
    "rw-fuss-catalan": ("book", "Free probability: Fuss-Catalan moments",
                        r"$\frac1n\mathbb E\,\mathrm{tr}(JJ^\top)^j \to \binom{(L+1)j}{j}/(Lj+1)$ for $L$ Ginibre factors of variance $1/n$"),
    "rw-lognormal": ("book", "Finite depth: log-normal norms",
                     r"$\log\lVert J_L u\rVert$ and $\log s_1(J_L)$ have mean and variance growing linearly in $L$"),
    "rw-balance": ("book", "Deep linear networks: balance and Saxe's curves",
                   r"gradient flow conserves $W_{\ell+1}^\top W_{\ell+1} - W_\ell W_\ell^\top$; a balanced aligned network follows $\dot s = L s^{2-2/L}(y - s)$, Saxe's logistic curve for $L = 2$"),
    # chapter 3: notation
    "notation-partial-products": ("book", "Notation: the two products and their partial products",
                                  r"Section 5's $J_L = D_L W_L\cdots D_1 W_1$ against Definition 4.1's $J = W_L D_{L-1}\cdots D_1 W_1$, and Section 6's $A_\ell = M_L\cdots M_{\ell+1}$ against Section 7's $A_\ell = W_L D_{L-1}\cdots W_{\ell+1} D_\ell$"),
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
