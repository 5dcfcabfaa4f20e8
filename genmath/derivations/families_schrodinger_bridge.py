"""The Schrödinger bridge between two Gaussians (one coordinate): its entropic-OT coupling, the
OT limit, the Markovian projection of a bridge mixture, the moment equations that make its drift
generate its marginals, IMF's reciprocal step and its fixed point, and DSBM's Brownian-bridge
target. Bound to `genmath.families.schrodinger_bridge`."""

import sympy as sp

from ._chain import FromStep
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register
from .elbo_gap import _Integral

a, b, sg = sp.symbols("a b sigma", positive=True)  # end stds; the reference's noise level
c = sp.Symbol("c", real=True)  # the coupling's cross-covariance
rho = sp.Symbol("rho", real=True)  # its correlation, c = rho a b (the code's domain)
t, s = sp.symbols("t s", positive=True)  # time; the integration variable over [0, 1]
x, m0, m1, xi = sp.symbols("x m_0 m_1 xi", real=True)

C_STAR = (sp.sqrt(sg**4 + 4 * a**2 * b**2) - sg**2) / 2
_precision_off_diagonal = sp.Matrix([[a**2, c], [c, b**2]]).inv()[0, 1]
_REFERENCES = ("bunne2023schrodinger", "mallasto2022entropy", "leonard2014survey")
_TESTS = ("tests/families/test_schrodinger_bridge.py",)
_CODE = "genmath.families.schrodinger_bridge"

register(
    Derivation(
        id="D-gaussian-sb-coupling",
        title="The Schrödinger bridge between Gaussians: its coupling is entropic OT in closed form",
        statement=(
            r"The static Schrödinger problem for the reference $\sigma W$ on $[0, 1]$ is entropic "
            r"optimal transport: its coupling has the Gibbs form $\pi \propto e^{-(x_0 - "
            r"x_1)^2/(2\sigma^2)}\,f(x_0)g(x_1)$ (the Schrödinger system; Léonard 2014). For "
            r"$\mathcal N(m_0, a^2)$ and $\mathcal N(m_1, b^2)$ the coupling is Gaussian and the "
            r"Gibbs form fixes the off-diagonal entry of its precision to $-1/\sigma^2$; the "
            r"cross-covariance $c = \tfrac12(\sqrt{\sigma^4 + 4a^2b^2} - \sigma^2)$ of Bunne et al. "
            r"(2023) (in $d$ dimensions $\tfrac12(\Sigma_0^{1/2}D_\sigma\Sigma_0^{-1/2} - "
            r"\sigma^2 I)$, $D_\sigma = (4\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} + \sigma^4I)^{1/2}$) "
            r"has it: the positive root of $c^2 + \sigma^2 c - a^2b^2 = 0$."
        ),
        start=_precision_off_diagonal.subs(c, C_STAR),
        steps=[
            Step(
                rhs=-1 / sg**2,
                reason=(
                    r"The precision of $[[a^2, c], [c, b^2]]$ has off-diagonal $-c/(a^2b^2 - c^2)$, "
                    r"and $a^2b^2 - c^2 = \sigma^2 c$ at this root."
                ),
            )
        ],
        symbols=(a, b, sg),
        references=_REFERENCES,
        code=(f"{_CODE}.schrodinger_bridge_cross_covariance", f"{_CODE}.GaussianSchrodingerBridge"),
        tests=_TESTS,
    )
)

register(
    Derivation(
        id="D-gaussian-sb-ot-limit",
        title="As the noise vanishes, the Schrödinger bridge's coupling is the optimal-transport map's",
        statement=(
            r"As $\sigma \to 0$ the bridge's cross-covariance tends to $ab$: $X_1 = m_1 + "
            r"(b/a)(X_0 - m_0)$, the monotone (optimal-transport) map, and the transport cost "
            r"$\mathbb E(X_1 - X_0)^2 \to (m_1 - m_0)^2 + (a - b)^2 = W_2^2$. In $d$ dimensions "
            r"$C_0 = \Sigma_0^{1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2} = "
            r"\Sigma_0 T$, $T$ the Bures map (Villani 2009)."
        ),
        start=sp.Limit(C_STAR, sg, 0, "+"),
        steps=[Step(rhs=a * b, reason=r"The root is continuous in $\sigma$; at $0$ it is $\sqrt{4a^2b^2}/2$.")],
        symbols=(a, b, sg),
        references=("bunne2023schrodinger", "villani2009optimal"),
        code=(f"{_CODE}.schrodinger_bridge_cross_covariance",),
        tests=_TESTS,
    )
)

_COST = a**2 + b**2 - 2 * c + (m1 - m0) ** 2

register(
    Derivation(
        id="D-bridge-transport-cost",
        title="The transport cost of a coupling, and W2 at the optimal-transport limit",
        statement=(
            r"$\mathbb E(X_1 - X_0)^2 = \mathrm{Var}(X_1 - X_0) + (\mathbb E(X_1 - X_0))^2 = a^2 + "
            r"b^2 - 2c + (m_1 - m_0)^2$ (in $d$ dimensions $\operatorname{tr}\Sigma_0 + "
            r"\operatorname{tr}\Sigma_1 - 2\operatorname{tr}C + \|m_1 - m_0\|^2$). At the "
            r"$\sigma \to 0$ coupling $c = ab$ (D-gaussian-sb-ot-limit) it is $W_2^2 = (m_1 - "
            r"m_0)^2 + (a - b)^2$, the squared Wasserstein distance of the two Gaussians."
        ),
        start=_COST,
        steps=[
            Step(rhs=(m1 - m0) ** 2 + a**2 + b**2 - 2 * c, reason="Reordered: the mean's part first."),
            Step(
                lhs=FromStep("D-bridge-transport-cost", {c: a * b}, step=1),
                rhs=(m1 - m0) ** 2 + (a - b) ** 2,
                reason=r"At $c = ab$ the variance part is the square $(a - b)^2$.",
            ),
        ],
        symbols=(a, b, c, m0, m1),
        references=("villani2009optimal", "bunne2023schrodinger"),
        code=(f"{_CODE}.GaussianBridgeMixture.transport_cost",),
        tests=_TESTS,
    )
)

# --- the bridge mixture of a coupling c: marginals and Markovian projection ------------------
M_T = (1 - t) * m0 + t * m1
V_T = (1 - t) ** 2 * a**2 + t**2 * b**2 + t * (1 - t) * (2 * c + sg**2)
P_T = t * b**2 - (1 - t) * a**2 + (1 - 2 * t) * c - sg**2 * t  # slope times variance
_cov_x1_xt = (1 - t) * c + t * b**2
DRIFT = (m1 - m0) + P_T * (x - M_T) / V_T

register(
    Derivation(
        id="D-gaussian-sb-drift",
        title="The Markovian projection of a Gaussian bridge mixture is a linear drift",
        statement=(
            r"Bridge a Gaussian coupling ($\mathrm{Var}\,X_0 = a^2$, $\mathrm{Var}\,X_1 = b^2$, "
            r"$\mathrm{Cov} = c$) with $X_t = (1-t)X_0 + tX_1 + \sigma\sqrt{t(1-t)}\,\xi$: $X_t \sim "
            r"\mathcal N(m_t, v_t)$, $v_t = (1-t)^2a^2 + t^2b^2 + t(1-t)(2c + \sigma^2)$. The drift "
            r"of its Markovian projection (Shi et al. 2023; Peluchetti 2023) is the conditional "
            r"mean of the Brownian bridge's drift, $\mathbb E[(X_1 - X_t)/(1-t)\mid X_t = x]$, by "
            r"Gaussian conditioning ($\mathrm{Cov}(X_1, X_t) = (1-t)c + tb^2$); it is "
            r"$(m_1 - m_0) + P_t(x - m_t)/v_t$ with $P_t = tb^2 - (1-t)a^2 + (1-2t)c - \sigma^2t$, "
            r"finite at $t = 1$. The Schrödinger bridge's drift is the case $c = c_\sigma$."
        ),
        start=(m1 + _cov_x1_xt * (x - M_T) / V_T - x) / (1 - t),
        steps=[
            Step(
                rhs=DRIFT,
                reason=r"$\mathrm{Cov}(X_1, X_t) - v_t = (1-t)P_t$: the pole at $t = 1$ cancels.",
            )
        ],
        symbols=(a, b, sg, c, t, x, m0, m1),
        references=("shi2023diffusion", "peluchetti2023diffusion", "bunne2023schrodinger"),
        code=(f"{_CODE}.GaussianBridgeMixture.drift", f"{_CODE}.GaussianBridgeMixture.mean"),
        tests=_TESTS,
    )
)

register(
    Derivation(
        id="D-gaussian-sb-moments",
        title="The projected drift generates the bridge mixture's marginals (Fokker–Planck)",
        statement=(
            r"A Gaussian $\mathcal N(m_t, v_t)$ solves the Fokker–Planck equation of the linear SDE "
            r"$dX = (\dot m_t + A_t(X - m_t))\,dt + \sigma\,dW$ exactly when $\dot v_t = 2A_tv_t + "
            r"\sigma^2$ (the moment equations of a linear SDE). With $A_t = P_t/v_t$ "
            r"(D-gaussian-sb-drift) this holds for the bridge mixture's $v_t$, for every coupling "
            r"$c$: the Markovian projection keeps every marginal, and for $c = c_\sigma$ the SB's "
            r"drift generates its marginals. In $d$ dimensions: $\dot\Sigma_t = A_t\Sigma_t + "
            r"\Sigma_tA_t^\top + \sigma^2I$ with $A_t\Sigma_t = P_t$."
        ),
        start=sp.Derivative(V_T, t),
        steps=[Step(rhs=2 * P_T + sg**2, reason=r"Differentiate $v_t$; compare with $2P_t + \sigma^2$.")],
        symbols=(a, b, sg, c, t),
        references=("shi2023diffusion", "bunne2023schrodinger"),
        code=(f"{_CODE}.GaussianBridgeMixture.cov",),
        tests=_TESTS,
    )
)

# --- IMF's reciprocal step in one coordinate, and its fixed point ---------------------------
_P_S, _V_S = P_T.subs(t, s), V_T.subs(t, s)
NEW_COUPLING = a**2 * sp.exp(_Integral(_P_S / _V_S, (s, 0, 1)))
_closed_step = a * b * sp.exp(-(sg**2) / 2 * _Integral(1 / _V_S, (s, 0, 1)))

register(
    Derivation(
        id="D-imf-markovian-coupling",
        title="Iterative Markovian fitting: the reciprocal step, and the bridge as its fixed point",
        statement=(
            r"Run the SDE $dX = f_t(X)\,dt + \sigma\,dW$ with the Markovian projection's drift "
            r"(D-gaussian-sb-drift) from $X_0 \sim \mathcal N(m_0, a^2)$: $X_1 - m_1 = \Phi(X_0 - "
            r"m_0) + \varepsilon$ with $\varepsilon$ independent noise, $\Phi = \exp\int_0^1 A_s\,ds$, so the new coupling has "
            r"$c' = a^2\Phi$ — one step of iterative Markovian fitting (IMF; DSBM in exact form, "
            r"Shi et al. 2023). Since $A = (\dot v - \sigma^2)/(2v)$ (D-gaussian-sb-moments), "
            r"$c' = ab\,\exp(-\tfrac{\sigma^2}{2}\int_0^1 ds/v_s)$. The Schrödinger bridge's "
            r"$c_\sigma$ is a fixed point: $c' = c_\sigma$."
        ),
        start=NEW_COUPLING,
        steps=[
            Step(
                rhs=_closed_step,
                tag=NUMERIC,
                samples=6,
                reason=(
                    r"$\int_0^1 \dot v/(2v) = \tfrac12\log(b^2/a^2)$; the rest is "
                    r"$-\tfrac{\sigma^2}{2}\int_0^1 ds/v_s$ (quadrature at random points)."
                ),
            ),
            Step(
                lhs=FromStep("D-imf-markovian-coupling", {c: C_STAR}, step=1),
                rhs=C_STAR,
                tag=NUMERIC,
                samples=6,
                reason=r"At the bridge's coupling the step returns it: the bridge is IMF's fixed point.",
            ),
        ],
        symbols=(a, b, sg, c),
        domain={c: Uniform(-0.5, 0.5), a: LogUniform(0.3, 3), b: LogUniform(0.3, 3), sg: LogUniform(0.1, 3)},
        references=("shi2023diffusion", "peluchetti2023diffusion", "leonard2014survey"),
        code=(f"{_CODE}.GaussianBridgeMixture.project",),
        tests=_TESTS,
    )
)

# --- DSBM's regression target ----------------------------------------------------------------
x0, x1, f = sp.symbols("x_0 x_1 f", real=True)
XT = (1 - t) * x0 + t * x1 + sg * sp.sqrt(t * (1 - t)) * xi
TARGET = (x1 - XT) / (1 - t)

register(
    Derivation(
        id="D-brownian-bridge-target",
        title="DSBM's bridge-matching target: the Brownian bridge's drift at its draw",
        statement=(
            r"The Brownian bridge of $\sigma W$ from $x_0$ to $x_1$ passes at time $t$ through "
            r"$x_t = (1-t)x_0 + tx_1 + \sigma\sqrt{t(1-t)}\,\xi$ with drift $(x_1 - x_t)/(1-t)$. "
            r"DSBM's loss $\tfrac12(f - (x_1 - x_t)/(1-t))^2$ regresses a drift $f$ onto it; its "
            r"minimiser is the Markovian projection (D-gaussian-sb-drift). The target is $x_1 - "
            r"x_0$ plus noise of variance $\sigma^2t/(1-t)$: finite for $t < 1$."
        ),
        start=(f - TARGET) ** 2 / 2,
        steps=[
            Step(
                rhs=(f - (x1 - x0) + sg * sp.sqrt(t * (1 - t)) * xi / (1 - t)) ** 2 / 2,
                reason=r"$x_1 - x_t = (1-t)(x_1 - x_0) - \sigma\sqrt{t(1-t)}\,\xi$.",
            )
        ],
        symbols=(x0, x1, f, sg, t, xi),
        references=("shi2023diffusion",),
        code=(f"{_CODE}.brownian_bridge", f"{_CODE}.bridge_matching_loss"),
        tests=_TESTS,
    )
)

# --------------------------------------------------------------------------- bindings

_ENDS = {a: LogUniform(0.3, 3), b: LogUniform(0.3, 3)}
_COUPLING = {**_ENDS, rho: Uniform(-0.9, 0.9), sg: LogUniform(0.05, 3)}


def _mixture(points, j, bridge=False):
    import torch

    from ..families.schrodinger_bridge import GaussianBridgeMixture, GaussianSchrodingerBridge

    aa, bb = float(points[a][j]), float(points[b][j])
    ss = float(points[sg][j]) if sg in points else 1.0  # the cost does not depend on sigma
    mean0 = points[m0][j : j + 1] if m0 in points else torch.zeros(1, dtype=torch.float64)
    mean1 = points[m1][j : j + 1] if m1 in points else torch.zeros(1, dtype=torch.float64)
    cov0 = torch.tensor([[aa**2]], dtype=torch.float64)
    cov1 = torch.tensor([[bb**2]], dtype=torch.float64)
    if bridge:
        return GaussianSchrodingerBridge(mean0, cov0, mean1, cov1, ss)
    cross = torch.tensor([[float(points[rho][j]) * aa * bb]], dtype=torch.float64)
    return GaussianBridgeMixture(mean0, cov0, mean1, cov1, cross, ss)


def _coupling_by_code(points):
    import torch

    from ..families.schrodinger_bridge import schrodinger_bridge_cross_covariance

    out = []
    for j in range(points[a].shape[0]):
        cov0, cov1 = points[a][j].reshape(1, 1) ** 2, points[b][j].reshape(1, 1) ** 2
        free = schrodinger_bridge_cross_covariance(cov0, cov1, float(points[sg][j]))[0, 0]
        bridge = _mixture(points, j, bridge=True).cross_cov[0, 0]
        out.append(torch.stack([free, bridge]))
    values = torch.stack(out)
    return values[:, 0], values[:, 1]


register(
    Binding(
        derivation="D-gaussian-sb-coupling",
        code=(f"{_CODE}.schrodinger_bridge_cross_covariance", f"{_CODE}.GaussianSchrodingerBridge"),
        expression=(C_STAR, C_STAR),
        evaluate=_coupling_by_code,
        domain={**_ENDS, sg: LogUniform(0.01, 5)},
        samples=16,
        description="schrodinger_bridge_cross_covariance and GaussianSchrodingerBridge.cross_cov, d = 1",
    )
)


def _ot_coupling_by_code(points):
    import torch

    from ..families.schrodinger_bridge import schrodinger_bridge_cross_covariance

    return torch.stack([
        schrodinger_bridge_cross_covariance(points[a][j].reshape(1, 1) ** 2, points[b][j].reshape(1, 1) ** 2, 0.0)[0, 0]
        for j in range(points[a].shape[0])
    ])


register(
    Binding(
        derivation="D-gaussian-sb-ot-limit",
        code=(f"{_CODE}.schrodinger_bridge_cross_covariance",),
        expression=a * b,
        evaluate=_ot_coupling_by_code,
        domain=_ENDS,
        samples=16,
        description="schrodinger_bridge_cross_covariance at sigma = 0, d = 1",
    )
)


def _drift_by_code(points):
    import torch

    out = []
    for j in range(points[a].shape[0]):
        mixture = _mixture(points, j)
        tt = points[t][j : j + 1]
        drift = mixture.drift(points[x][j].reshape(1, 1), tt)[0, 0]
        out.append(torch.stack([drift, mixture.mean(tt)[0, 0]]))
    values = torch.stack(out)
    return values[:, 0], values[:, 1]


register(
    Binding(
        derivation="D-gaussian-sb-drift",
        code=(f"{_CODE}.GaussianBridgeMixture.drift", f"{_CODE}.GaussianBridgeMixture.mean"),
        expression=(DRIFT, M_T),
        where={c: rho * a * b},
        evaluate=_drift_by_code,
        domain={**_COUPLING, t: Uniform(0, 1, ends=True), x: Uniform(-4, 4), m0: Uniform(-2, 2), m1: Uniform(-2, 2)},
        samples=16,
        description="GaussianBridgeMixture.drift and .mean, d = 1, t on all of [0, 1]",
    )
)


def _cov_by_code(points):
    import torch

    return torch.stack([
        _mixture(points, j).cov(points[t][j])[0, 0] for j in range(points[a].shape[0])
    ])


register(
    Binding(
        derivation="D-gaussian-sb-moments",
        code=(f"{_CODE}.GaussianBridgeMixture.cov",),
        expression=V_T,
        where={c: rho * a * b},
        evaluate=_cov_by_code,
        domain={**_COUPLING, t: Uniform(0, 1, ends=True)},
        samples=16,
        description="GaussianBridgeMixture.cov, d = 1",
    )
)


def _projection_by_code(points):
    import torch

    out = []
    for j in range(points[a].shape[0]):
        mixture = _mixture(points, j)
        bridge = _mixture(points, j, bridge=True)
        out.append(torch.stack([mixture.project().cross_cov[0, 0], bridge.project().cross_cov[0, 0]]))
    values = torch.stack(out)
    return values[:, 0], values[:, 1]


register(
    Binding(
        derivation="D-imf-markovian-coupling",
        code=(f"{_CODE}.GaussianBridgeMixture.project",),
        expression=(NEW_COUPLING, C_STAR),
        where={c: rho * a * b},
        evaluate=_projection_by_code,
        domain=_COUPLING,
        samples=6,
        tolerance=1e-8,  # the transition matrix is integrated by RK4 (PROJECTION_STEPS steps)
        description="GaussianBridgeMixture.project (forward) of a coupling and of the bridge, d = 1",
    )
)


def _bridge_by_code(points):
    import torch

    from ..families.schrodinger_bridge import bridge_matching_loss, brownian_bridge

    a0, a1, noise = points[x0][:, None], points[x1][:, None], points[xi][:, None]
    tt, ss = points[t], points[sg]
    targets, losses = [], []
    for j in range(tt.shape[0]):
        pair = (a0[j : j + 1], a1[j : j + 1])
        _, target = brownian_bridge(*pair, tt[j : j + 1], float(ss[j]), noise=noise[j : j + 1])
        value = points[f][j : j + 1, None]
        loss = bridge_matching_loss(lambda xt, s, v=value: v, *pair, float(ss[j]), t=tt[j : j + 1], noise=noise[j : j + 1])
        targets.append(target[0, 0])
        losses.append(loss)
    return torch.stack(targets), torch.stack(losses)


register(
    Binding(
        derivation="D-brownian-bridge-target",
        code=(f"{_CODE}.brownian_bridge", f"{_CODE}.bridge_matching_loss"),
        expression=(TARGET, (f - TARGET) ** 2 / 2),
        evaluate=_bridge_by_code,
        domain={
            x0: Uniform(-3, 3), x1: Uniform(-3, 3), f: Uniform(-3, 3), xi: Uniform(-3, 3),
            sg: Uniform(0, 3, ends=True), t: Uniform(0, 0.95, ends=True),
        },
        samples=16,
        description="brownian_bridge's target and bridge_matching_loss at the draw xi, t in [0, 0.95]",
    )
)


def _cost_by_code(points):
    import torch

    out = []
    for j in range(points[a].shape[0]):
        mixture = _mixture(points, j)
        points_ot = {**points, sg: torch.zeros_like(points[a])}
        ot = _mixture(points_ot, j, bridge=True)
        out.append(torch.stack([mixture.transport_cost(), ot.transport_cost()]))
    values = torch.stack(out)
    return values[:, 0], values[:, 1]


register(
    Binding(
        derivation="D-bridge-transport-cost",
        code=(f"{_CODE}.GaussianBridgeMixture.transport_cost",),
        expression=(_COST, (m1 - m0) ** 2 + (a - b) ** 2),
        where={c: rho * a * b},
        evaluate=_cost_by_code,
        domain={**_ENDS, rho: Uniform(-0.9, 0.9), m0: Uniform(-2, 2), m1: Uniform(-2, 2)},
        samples=16,
        description="transport_cost of a coupling and of the sigma = 0 bridge (the OT coupling), d = 1",
    )
)
