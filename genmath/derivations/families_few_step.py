"""Few-step generators: the consistency models' boundary parameterization, training schedule
and losses (with the gradients their stop-gradients define), and MeanFlow's identity, JVP
target, losses and sampler for the average velocity.

The bindings live in `_few_step_bindings.py` (same topic; split to keep files short)."""

import sympy as sp

from ._chain import Earlier
from ._engine import Check, Derivation, Step, sound_rewrite
from ._registry import register
from ._stop_gradient import StopGradient, stop_gradient
from .edm_preconditioning import c_in as _edm_c_in
from .edm_preconditioning import sigma as _edm_sigma

_CM = "genmath.families.consistency"
_MF = "genmath.families.meanflow"
_CM_TESTS = ("tests/families/test_consistency.py",)
_MF_TESTS = ("tests/families/test_meanflow.py",)

t, r, tau = sp.symbols("t r tau", real=True)


def _release(expr):
    """``expr`` with every (possibly nested) stop-gradient replaced by its argument."""
    while expr.has(StopGradient):
        expr = expr.replace(lambda e: isinstance(e, StopGradient), lambda e: e.args[0])
    return expr


@sound_rewrite(
    "a stop-gradient is the identity on values: once the derivatives are taken (with the "
    "stopped quantity held constant), sg(y) is replaced by y; common factors are then "
    "collected (factor_terms), or the difference expanded and cancelled"
)
def release_stop_gradient(expr):
    expr = _release(sp.sympify(expr).doit())
    collected = sp.factor_terms(expr)
    return collected if collected == 0 else sp.cancel(sp.expand(expr))

# ------------------------------------------------------------------ consistency boundary
s, s_min = sp.symbols("s s_min", positive=True)
sigma_d = sp.Symbol("sigma_d", positive=True)
x_c, F_c = sp.symbols("x F", real=True)
c_skip_song = sigma_d**2 / ((s - s_min) ** 2 + sigma_d**2)
c_out_song = sigma_d * (s - s_min) / sp.sqrt(sigma_d**2 + s**2)
c_skip_edm = sigma_d**2 / (s**2 + sigma_d**2)
c_out_edm = s * sigma_d / sp.sqrt(s**2 + sigma_d**2)
#: the parameterization $f_\theta(x, s) = c_\mathrm{skip}(s) x + c_\mathrm{out}(s) F_\theta$
consistency_function = c_skip_song * x_c + c_out_song * F_c
alpha_c = sp.Symbol("alpha", positive=True)
#: EDM's input scaling and noise label at noise level s (D-edm-preconditioning's c_in)
c_in_edm = _edm_c_in.subs(_edm_sigma, s)
c_noise_edm = sp.log(s) / 4

register(
    Derivation(
        id="D-consistency-boundary",
        title="The consistency parameterization meets the boundary condition",
        statement=(
            r"With $f_\theta(x, s) = c_\mathrm{skip}(s)\,x + c_\mathrm{out}(s)\,F_\theta(x, t)$ "
            r"at the path's noise level $s = \sigma_t/\alpha_t$ and Song et al.'s scalings "
            r"$c_\mathrm{skip}(s) = \sigma_d^2/((s - s_\mathrm{min})^2 + \sigma_d^2)$, "
            r"$c_\mathrm{out}(s) = \sigma_d (s - s_\mathrm{min})/\sqrt{\sigma_d^2 + s^2}$, the "
            r"boundary condition $f_\theta(x, s_\mathrm{min}) = x$ holds for every network "
            r"$F_\theta$. They are Karras et al.'s EDM scalings shifted by $s_\mathrm{min}$; the "
            r"EDM forms make the network's regression target $(x_0 - c_\mathrm{skip} x)/"
            r"c_\mathrm{out}$ of unit variance for data of variance $\sigma_d^2$ and "
            r"$x = x_0 + s\,n$. With ``input_scaling`` the network sees $c_\mathrm{in}(s)\,"
            r"x_t/\alpha_t$, $c_\mathrm{in} = 1/\sqrt{s^2 + \sigma_d^2}$ (D-edm-preconditioning), "
            r"of unit variance for $x_t = \alpha_t x_0 + \sigma_t n$, $\sigma_t = \alpha_t s$; "
            r"with ``noise_conditioning='edm'`` the label $c_\mathrm{noise} = \tfrac14\ln s$. "
            r"Neither touches $c_\mathrm{skip}, c_\mathrm{out}$, so the boundary condition holds "
            r"with them. One-step sampling evaluates $f_\theta(\sigma_T z, T)$ at "
            r"$T = t_\mathrm{max}$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(consistency_function, s, s_min),
                sp.Subs(c_skip_song, s_min, 0),
                sp.Subs(c_out_song, s_min, 0),
                ((1 - c_skip_edm) ** 2 * sigma_d**2 + c_skip_edm**2 * s**2) / c_out_edm**2,
                (c_in_edm / alpha_c) ** 2 * (alpha_c**2 * sigma_d**2 + (alpha_c * s) ** 2),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([x_c, c_skip_edm, c_out_edm, 1, 1]),
                reason=(
                    r"At $s = s_\mathrm{min}$ the shift vanishes: $c_\mathrm{skip} = 1$, and "
                    r"$c_\mathrm{out}$ carries the factor $s - s_\mathrm{min}$, so $f = x$ whatever "
                    r"$F_\theta$. With $s_\mathrm{min} = 0$ the scalings are EDM's (Karras et al. "
                    r"2022, Table 1), and $\operatorname{Var}[x_0 - c_\mathrm{skip}(x_0 + s n)] = "
                    r"(1 - c_\mathrm{skip})^2\sigma_d^2 + c_\mathrm{skip}^2 s^2 = c_\mathrm{out}^2$: "
                    r"a unit-variance target. Last row: $\operatorname{Var}(x_t/\alpha_t) = "
                    r"\sigma_d^2 + s^2 = 1/c_\mathrm{in}^2$, a unit-variance network input."
                ),
            ),
        ],
        symbols=(s, s_min, sigma_d, x_c, F_c, alpha_c),
        references=("song2023consistency", "karras2022elucidating"),
        code=(
            f"{_CM}.boundary_coefficients",
            f"{_CM}.ConsistencyModel",
            f"{_CM}.sample",
            "genmath.families.diffusion.edm_preconditioning",
        ),
        tests=_CM_TESTS,
    )
)

# ------------------------------------------------------------------ re-noising (Algorithm 1)
a_from, a_to = sp.symbols("alpha_from alpha_to", positive=True)
s_from, s_to = sp.symbols("s_from s_to", positive=True)
y_r, n_r, z_r, x_r = sp.symbols("y n z x", real=True)  # data, noise in x, fresh noise, state
_added = sp.sqrt(s_to**2 - s_from**2)
#: Song et al.'s Algorithm 1 in the scaled state: x_to = (a_to/a_from) x + a_to sqrt(s_to^2 - s_from^2) z
renoise_algorithm1 = a_to / a_from * x_r + a_to * _added * z_r
#: re-noising along the path as if x were data: x_to = a_to x + sigma_to z, sigma_to = a_to s_to
renoise_path = a_to * x_r + a_to * s_to * z_r
_state = a_from * (y_r + s_from * n_r)  # a point of p_from: x = a_from (y + s_from n)


def _noise_variance(expr):
    """Var of ``expr`` given the data y, for independent standard n and z."""
    return sp.diff(expr, n_r) ** 2 + sp.diff(expr, z_r) ** 2


register(
    Derivation(
        id="D-consistency-renoise",
        title="Song et al.'s re-noising step gives the exact marginal at the new noise level",
        statement=(
            r"Multistep consistency sampling (Song et al. 2023, Algorithm 1) re-noises the "
            r"model's output $x$ at $t_\mathrm{min}$ (noise level $\epsilon$) to a level $\tau$ "
            r"by $x + \sqrt{\tau^2 - \epsilon^2}\,z$ on the VE axis. On any Gaussian path, in "
            r"EDM's noise level $s = \sigma/\alpha$ and scaled state $x/\alpha = x_0 + s\,n$: "
            r"$x_\tau = \tfrac{\alpha_\tau}{\alpha_t}x + \alpha_\tau\sqrt{s_\tau^2 - s_t^2}\,z$. "
            r"If $x \sim p_t$, i.e. $x = \alpha_t(x_0 + s_t n)$, then $x_\tau = \alpha_\tau(x_0 + "
            r"s_t n + \sqrt{s_\tau^2 - s_t^2}\,z)$, whose noise given $x_0$ has variance "
            r"$\alpha_\tau^2 s_\tau^2 = \sigma_\tau^2$: $x_\tau \sim p_\tau$ exactly. "
            r"Re-noising along the path, $\alpha_\tau x + \sigma_\tau z$, treats $x$ as data: "
            r"its noise variance exceeds $\sigma_\tau^2$ by $\alpha_\tau^2\alpha_t^2 s_t^2$ "
            r"(on VE, by $\epsilon^2$)."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(renoise_algorithm1, x_r, _state),
                _noise_variance(renoise_algorithm1.subs(x_r, _state)),
                renoise_algorithm1.subs({a_from: 1, a_to: 1}),
                sp.Subs(renoise_path, x_r, _state),
                _noise_variance(renoise_path.subs(x_r, _state)) - (a_to * s_to) ** 2,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        a_to * (y_r + s_from * n_r + _added * z_r),
                        (a_to * s_to) ** 2,
                        x_r + sp.sqrt(s_to**2 - s_from**2) * z_r,
                        a_to * a_from * (y_r + s_from * n_r) + a_to * s_to * z_r,
                        (a_to * a_from * s_from) ** 2,
                    ]
                ),
                reason=(
                    r"Multiply out: the signal keeps its scale $\alpha_\tau$, the noise variances "
                    r"add, $\alpha_\tau^2(s_t^2 + s_\tau^2 - s_t^2) = \sigma_\tau^2$; with "
                    r"$\alpha = 1$ (VE) the step is Algorithm 1's as written; the path rule "
                    r"adds $\sigma_\tau^2$ on top of the noise $x$ already carries."
                ),
            ),
        ],
        symbols=(a_from, a_to, s_from, s_to, y_r, n_r, z_r, x_r),
        references=("song2023consistency",),
        code=(f"{_CM}.renoise", f"{_CM}.sample"),
        tests=_CM_TESTS,
        domain={s_to: (1.0, 80.0), s_from: (1e-3, 1.0)},
    )
)

# ------------------------------------------------------------------ training schedule
k_it, K_it, s0, s1, N_pts = sp.symbols("k K s_0 s_1 N", positive=True, integer=True)
mu0 = sp.Symbol("mu_0", positive=True)
mu_ema, theta_target, theta_online = sp.symbols("mu theta^- theta", real=True)
_growth = sp.sqrt(k_it / K_it * ((s1 + 1) ** 2 - s0**2) + s0**2)
#: $N(k) = \lceil g(k) - 1\rceil + 1$ (sympy writes it $\lceil g(k)\rceil$ at once)
training_steps_expr = sp.ceiling(_growth - 1) + 1
#: $\mu(N) = \exp(s_0\log\mu_0/N)$
ema_decay_expr = sp.exp(s0 * sp.log(mu0) / N_pts)
#: one EMA update $\theta^- \leftarrow \mu\theta^- + (1 - \mu)\theta$
ema_update_expr = mu_ema * theta_target + (1 - mu_ema) * theta_online

register(
    Derivation(
        id="D-consistency-training-schedule",
        title="Consistency training's step count N(k), EMA decay mu(N) and EMA update",
        statement=(
            r"Song et al. (2023, App. C) grow the discretisation as $N(k) = \lceil\sqrt{k/K\,"
            r"((s_1 + 1)^2 - s_0^2) + s_0^2} - 1\rceil + 1 = \lceil g(k)\rceil$: $g^2$ moves "
            r"linearly from $s_0^2$ to $(s_1 + 1)^2$, so $N(0) = s_0$ and $N(K) = s_1 + 1$ "
            r"points $t_1 < \dots < t_N$ (`training_grid`: `karras_grid` with $N - 1$ "
            r"intervals, the loss's ``steps``). The EMA decay $\mu(N) = \exp(s_0\log\mu_0/N)$ keeps $\mu(N)^N = "
            r"\mu_0^{s_0}$: the target forgets at the same rate per sweep of $N$ updates "
            r"whatever $N$, with $\mu(s_0) = \mu_0$. The update $\theta^- \leftarrow "
            r"\mu\theta^- + (1 - \mu)\theta$ applied twice at fixed $\theta$ contracts the gap "
            r"by $\mu^2$."
        ),
        start=sp.ImmutableMatrix(
            [
                training_steps_expr,
                training_steps_expr.subs(k_it, 0),
                training_steps_expr.subs(k_it, K_it),
                sp.Pow(ema_decay_expr, N_pts, evaluate=False),
                ema_decay_expr.subs(N_pts, s0),
                mu_ema * ema_update_expr + (1 - mu_ema) * theta_online,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        sp.ceiling(_growth),
                        s0,
                        s1 + 1,
                        mu0**s0,
                        mu0,
                        theta_online + mu_ema**2 * (theta_target - theta_online),
                    ]
                ),
                reason=(
                    r"$\lceil x - 1\rceil + 1 = \lceil x\rceil$; at $k = 0$ and $k = K$ the root "
                    r"is the integer $s_0$, resp. $s_1 + 1$; $(e^{a/N})^N = e^a$ with "
                    r"$a = s_0\log\mu_0$; two updates leave $\theta + \mu^2(\theta^- - \theta)$."
                ),
            ),
        ],
        symbols=(k_it, K_it, s0, s1, N_pts, mu0, mu_ema, theta_target, theta_online),
        references=("song2023consistency",),
        code=(
            f"{_CM}.training_steps",
            f"{_CM}.training_grid",
            f"{_CM}.ema_decay",
            f"{_CM}.ema_update",
        ),
        tests=_CM_TESTS,
    )
)

# ------------------------------------------------------------------ consistency losses
# A one-dimensional case: F_theta(x, t) = w x, so f_theta(x, s) = (c_skip(s) + c_out(s) w) x,
# with the target network *equal* to the online one (theta^- = theta), where a stop-gradient
# placed differently (or removed) changes the gradient.
w_p = sp.Symbol("w", real=True)
x0_c, eps_c, kappa = sp.symbols("x_0 epsilon kappa", real=True)
t_hi, t_lo = sp.symbols("t_hi t_lo", positive=True)
# the CondOT path, alpha_t = 1 - t, sigma_t = t (the binding's times are its own symbols, no
# substitution into these expressions: a sympy `subs` of them costs about a second each)
a_hi, b_hi, a_lo, b_lo = 1 - t_hi, t_hi, 1 - t_lo, t_lo
huber_c = sp.Symbol("c", positive=True)


def _f_model(point, level):
    return (c_skip_song.subs(s, level) + c_out_song.subs(s, level) * w_p) * point


x_hi = a_hi * x0_c + b_hi * eps_c
_s_hi, _s_lo = b_hi / a_hi, b_lo / a_lo
_h = t_lo - t_hi
_k1 = kappa * x_hi + t_hi  # the teacher velocity v(x, t) = kappa x + t
x_lo_training = a_lo * x0_c + b_lo * eps_c
x_lo_euler = x_hi + _h * _k1
x_lo_heun = x_hi + _h / 2 * (_k1 + kappa * (x_hi + _h * _k1) + t_lo)


def _gap(x_lo, stopped=True):
    anchor = _f_model(x_lo, _s_lo)
    return _f_model(x_hi, _s_hi) - (stop_gradient(anchor) if stopped else anchor)


consistency_l2 = {name: _gap(x) ** 2 for name, x in
                  (("training", x_lo_training), ("euler", x_lo_euler), ("heun", x_lo_heun))}
consistency_huber = sp.sqrt(_gap(x_lo_training) ** 2 + huber_c**2) - huber_c
_dfdw_hi = c_out_song.subs(s, _s_hi) * x_hi


def _l2_gradient(x_lo):
    return 2 * _gap(x_lo, stopped=False) * _dfdw_hi


consistency_gradients = {
    "training": _l2_gradient(x_lo_training),
    "euler": _l2_gradient(x_lo_euler),
    "heun": _l2_gradient(x_lo_heun),
    "huber": _gap(x_lo_training, stopped=False)
    / sp.sqrt(_gap(x_lo_training, stopped=False) ** 2 + huber_c**2)
    * _dfdw_hi,
}

register(
    Derivation(
        id="D-consistency-losses",
        title="Consistency training and distillation losses and the gradient their stop-gradient defines",
        statement=(
            r"The consistency loss $d\big(f_\theta(x_{t_{n+1}}, t_{n+1}), "
            r"\mathrm{sg}(f_{\theta^-}(\hat x_{t_n}, t_n))\big)$ with $x_{t_{n+1}} = "
            r"\alpha x_0 + \sigma\varepsilon$ and $\hat x_{t_n}$ the same noise at $t_n$ "
            r"(training) or one Euler/Heun step of a teacher velocity (distillation), "
            r"$d = \Delta^2$ or the pseudo-Huber $\sqrt{\Delta^2 + c^2} - c$. The target is held "
            r"constant, so even with $\theta^- = \theta$ the gradient is $\partial_\Delta d\cdot"
            r"\partial_\theta f_\theta(x_{t_{n+1}})$ only — without the stop-gradient it would "
            r"also carry $-\partial_\Delta d\cdot\partial_\theta f_\theta(\hat x_{t_n})$. Shown "
            r"on CondOT ($\alpha_t = 1 - t$, $\sigma_t = t$, $s = t/(1 - t)$) for "
            r"$F_\theta(x, t) = w x$, teacher velocity $v(x, t) = \kappa x + t$."
        ),
        start=sp.ImmutableMatrix(
            [sp.Derivative(consistency_l2[n], w_p) for n in ("training", "euler", "heun")]
            + [sp.Derivative(consistency_huber, w_p)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [consistency_gradients[n] for n in ("training", "euler", "heun", "huber")]
                ),
                reason=(
                    r"Differentiate in $w$ with the target held constant "
                    r"($\partial\,\mathrm{sg} = 0$): only $f_\theta(x_{t_{n+1}})$, whose "
                    r"$w$-derivative is $c_\mathrm{out}(s_{n+1})\,x_{t_{n+1}}$, contributes."
                ),
                method=release_stop_gradient,
            ),
        ],
        symbols=(w_p, x0_c, eps_c, kappa, t_hi, t_lo, s_min, sigma_d, huber_c),
        references=("song2023consistency", "song2024improved"),
        code=(f"{_CM}.consistency_training_loss", f"{_CM}.consistency_distillation_loss"),
        tests=_CM_TESTS,
    )
)

# ------------------------------------------------------------------ MeanFlow identity
v_path = sp.Function("v")  # v(z_tau, tau) along the trajectory, a function of tau alone
average = sp.Integral(v_path(tau), (tau, r, t)) / (t - r)

# 1-D Gaussian data N(m, q^2) on CondOT: the affine flow map and the average velocity.
m, z = sp.symbols("m z", real=True)
q = sp.Symbol("q", positive=True)


def _condot_variance(time):
    return (1 - time) ** 2 * q**2 + time**2


flow_map_t_to_r = (1 - r) * m + sp.sqrt(_condot_variance(r) / _condot_variance(t)) * (
    z - (1 - t) * m
)
chord = (z - flow_map_t_to_r) / (t - r)
gaussian_velocity = -m + sp.diff(_condot_variance(t), t) / (2 * _condot_variance(t)) * (
    z - (1 - t) * m
)

register(
    Derivation(
        id="D-meanflow-identity",
        title="The MeanFlow identity for the average velocity",
        statement=(
            r"The average velocity $u(z_t, r, t) = \frac{1}{t - r}\int_r^t v(z_\tau, \tau)\,d\tau$ "
            r"along a trajectory of $\dot z = v$ satisfies "
            r"$u = v(z_t, t) - (t - r)\,\frac{d}{dt}u(z_t, r, t)$, the total derivative along "
            r"the trajectory being $\frac{d}{dt}u = v\,\partial_z u + \partial_t u$ "
            r"(D-meanflow-target; Geng et al. 2025). For Gaussian data the flow map is affine "
            r"(D-gaussian-flow-map), $u = (z - \Phi_{t\to r}(z))/(t - r)$ satisfies the identity "
            r"in that form, and tends to the marginal velocity as $r \to t$."
        ),
        start=average,
        steps=[
            Step(
                rhs=v_path(t) - (t - r) * sp.Derivative(average, t),
                reason=(
                    r"$(t - r)\,u = \int_r^t v\,d\tau$; differentiate in $t$ (fundamental "
                    r"theorem of calculus, $r$ fixed) and use the product rule: "
                    r"$u + (t - r)\tfrac{d}{dt}u = v$, solved for $u$."
                ),
            ),
            Step(
                lhs=chord,
                rhs=gaussian_velocity
                - (t - r) * (gaussian_velocity * sp.diff(chord, z) + sp.diff(chord, t)),
                reason=(
                    r"Gaussian data $\mathcal N(m, q^2)$ on CondOT: $\Phi_{t\to r}(z) = (1 - r)m + "
                    r"\sqrt{C_r/C_t}\,(z - (1 - t)m)$, $C_t = (1-t)^2 q^2 + t^2$ "
                    r"(D-gaussian-flow-map); its chord $u$ obeys the identity with the marginal "
                    r"velocity $v = -m + \tfrac{\dot C_t}{2 C_t}(z - (1-t)m)$ "
                    r"(D-gaussian-marginal-velocity) and $\frac{d}{dt}u = v\partial_z u + "
                    r"\partial_t u$."
                ),
                tag="numeric",
            ),
            Step(
                lhs=gaussian_velocity,
                rhs=sp.Subs(sp.Derivative(flow_map_t_to_r, r), r, t),
                reason=(
                    r"As $r \to t$ the chord $(z - \Phi_{t\to r}(z))/(t - r)$ tends to "
                    r"$\partial_r\Phi_{t\to r}(z)|_{r = t}$ ($\Phi_{t\to t} = \mathrm{id}$, "
                    r"l'H\^opital), the marginal velocity: $u(z, t, t) = v(z, t)$."
                ),
            ),
        ],
        symbols=(t, r, tau, z, m, q),
        references=("geng2025meanflow",),
        code=(f"{_MF}.average_velocity_from_flow_map",),
        tests=_MF_TESTS,
        domain={t: (0.55, 1.0), r: (0.0, 0.45), z: (-3, 3), m: (-2, 2), q: (0.2, 3)},
    )
)

register(
    Check(
        id="C-meanflow-gaussian",
        title="MeanFlow's JVP target reproduces the exact average velocity of Gaussian data",
        function=lambda: __import__(
            "genmath.derivations._few_step_bindings", fromlist=["_"]
        ).meanflow_gaussian_check(),
        tolerance=1e-10,
        code=(f"{_MF}.meanflow_target",),
        tests=_MF_TESTS,
        derivation="D-meanflow-identity",
    )
)

# ------------------------------------------------------------------ MeanFlow's JVP target
h_jvp, v_t = sp.symbols("h v", real=True)
u_fn = sp.Function("u")
a_p, b_p, g_p = sp.symbols("a b g", real=True)
_zz, _rr, _tt = sp.symbols("_z _r _t", real=True)
#: the model of the bindings, u(z, r, t) = a z + b t z + g r t (r enters, so a wrong tangent
#: in r shows)
model_u = sp.Lambda((_zz, _rr, _tt), a_p * _zz + b_p * _tt * _zz + g_p * _rr * _tt)


def _target(model, tangent, point, r_, t_):
    zz, rr, tt = sp.symbols("_zv _rv _tv", real=True)
    body = model(zz, rr, tt)
    rate = tangent * sp.diff(body, zz) + sp.diff(body, tt)
    return (tangent - (t_ - r_) * rate).subs({zz: point, rr: r_, tt: t_}, simultaneous=True)


meanflow_target_expr = _target(model_u, v_t, z, r, t)

register(
    Derivation(
        id="D-meanflow-target",
        title="MeanFlow's target is one Jacobian-vector product with tangent (v, 0, 1)",
        statement=(
            r"The forward-mode derivative of $u(z, r, t)$ along the tangent $(v, 0, 1)$ over "
            r"$(z, r, t)$ is $\frac{d}{dh}u(z + h v, r, t + h)|_{h=0} = v\,\partial_z u + "
            r"\partial_t u$, the total derivative of D-meanflow-identity along $\dot z = v$; "
            r"the target is $u_\mathrm{tgt} = v - (t - r)(v\,\partial_z u + \partial_t u)$. "
            r"Shown for any $u$ and for the bindings' $u = a z + b t z + g r t$."
        ),
        start=v_t - (t - r) * sp.Subs(sp.Derivative(u_fn(z + h_jvp * v_t, r, t + h_jvp), h_jvp), h_jvp, 0),
        steps=[
            Step(
                rhs=v_t - (t - r) * (v_t * sp.Derivative(u_fn(z, r, t), z)
                                     + sp.Derivative(u_fn(z, r, t), t)),
                reason=r"Chain rule in $h$ at $h = 0$; $r$ does not move ($\dot r = 0$).",
            ),
            Step(
                lhs=Earlier("D-meanflow-target", {u_fn: model_u}, step=1),
                rhs=meanflow_target_expr,
                reason=r"For $u = a z + b t z + g r t$: $\partial_z u = a + b t$, "
                r"$\partial_t u = b z + g r$.",
            ),
        ],
        symbols=(z, r, t, v_t, a_p, b_p, g_p),
        references=("geng2025meanflow",),
        code=(f"{_MF}.meanflow_target",),
        tests=_MF_TESTS,
    )
)

# ------------------------------------------------------------------ MeanFlow losses
x_m, eps_m = sp.symbols("x epsilon", real=True)
p_w = sp.Symbol("p", nonnegative=True)
c_w = sp.Symbol("c", positive=True)
omega = sp.Symbol("omega", real=True)
_z_t = (1 - t) * x_m + t * eps_m  # CondOT
_v_cond = eps_m - x_m


def _weighted(residual):
    """w * residual^2 with the adaptive weight w = sg((residual^2 + c)^(-p))."""
    return stop_gradient((residual**2 + c_w) ** (-p_w)) * residual**2


def _model_at(point, r_, t_):
    return model_u(point, r_, t_)


_u_mf = _model_at(_z_t, r, t)
meanflow_loss_expr = _weighted(_u_mf - stop_gradient(_target(model_u, _v_cond, _z_t, r, t)))
_tangent = stop_gradient(_model_at(_z_t, t, t))
# (t - r) du/dt = tangent - target, held constant
_reconstructed = _u_mf + stop_gradient(_tangent - _target(model_u, _tangent, _z_t, r, t))
improved_loss_expr = _weighted(_reconstructed - _v_cond)





def _weighted_gradient(residual_plain, d_residual):
    weight = (residual_plain**2 + c_w) ** (-p_w)
    return weight * 2 * residual_plain * d_residual


_res_mf = _release(_u_mf - _target(model_u, _v_cond, _z_t, r, t))
_res_imf = _release(_reconstructed - _v_cond)
meanflow_gradients = [
    _weighted_gradient(_res_mf, sp.diff(_u_mf, theta)) for theta in (a_p, b_p)
] + [_weighted_gradient(_res_imf, sp.diff(_u_mf, theta)) for theta in (a_p, b_p)]

register(
    Derivation(
        id="D-meanflow-losses",
        title="The MeanFlow and improved-MeanFlow losses and the gradients their stop-gradients define",
        statement=(
            r"MeanFlow regresses $u_\theta$ onto $\mathrm{sg}(u_\mathrm{tgt})$ "
            r"(D-meanflow-target, tangent the conditional velocity $v = \varepsilon - x$), "
            r"weighted by $w = \mathrm{sg}((\Delta^2 + c)^{-p})$: the gradient is "
            r"$2w\Delta\,\partial_\theta u_\theta$. Improved MeanFlow reconstructs the velocity "
            r"$V_\theta = u_\theta + (t - r)\,\mathrm{sg}(\tfrac{d}{dt}u_\theta)$ with the "
            r"model's own tangent $\mathrm{sg}(u_\theta(z, t, t))$ and regresses it onto $v$; "
            r"by D-meanflow-identity $u + (t - r)\tfrac{d}{dt}u$ *is* the instantaneous velocity "
            r"for the true average velocity, so the conditional target $v$ has the marginal "
            r"velocity as its conditional mean. Its gradient is $2w(V_\theta - v)\,"
            r"\partial_\theta u_\theta$. Shown for $u = a z + b t z + g r t$ on CondOT."
        ),
        start=sp.ImmutableMatrix(
            [average + (t - r) * sp.Derivative(average, t)]
            + [sp.Derivative(meanflow_loss_expr, theta) for theta in (a_p, b_p)]
            + [sp.Derivative(improved_loss_expr, theta) for theta in (a_p, b_p)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([v_path(t), *meanflow_gradients]),
                reason=(
                    r"First row: D-meanflow-identity rearranged. Then differentiate in $(a, b)$ "
                    r"with the target, the tangent, $\tfrac{d}{dt}u$ and the weight held "
                    r"constant ($\partial\,\mathrm{sg} = 0$): only $u_\theta(z_t, r, t)$ "
                    r"contributes, with $\partial_a u = z_t$, $\partial_b u = t z_t$."
                ),
                method=release_stop_gradient,
            ),
        ],
        symbols=(x_m, eps_m, r, t, a_p, b_p, g_p, p_w, c_w),
        references=("geng2025meanflow", "geng2025improved"),
        code=(
            f"{_MF}.meanflow_loss",
            f"{_MF}.improved_meanflow_loss",
            f"{_MF}.adaptive_weight",
        ),
        tests=_MF_TESTS,
    )
)

# ------------------------------------------------------------------ MeanFlow sampler
s_mid = sp.Symbol("s_mid", real=True)

register(
    Derivation(
        id="D-meanflow-sampler",
        title="A MeanFlow jump is the flow map; jumps compose",
        statement=(
            r"One sampling step $z_r = z_t - (t - r)\,u(z_t, r, t)$ with the exact average "
            r"velocity is the flow map $\Phi_{t\to r}$, and maps compose "
            r"($\Phi_{s\to r}\circ\Phi_{t\to s} = \Phi_{t\to r}$), so one or several jumps from "
            r"$t = 1$ to $0$ give the same sample. Shown for Gaussian data on CondOT."
        ),
        start=z - (t - r) * chord,
        steps=[
            Step(rhs=flow_map_t_to_r, reason=r"The chord's definition, multiplied out."),
            Step(
                lhs=Earlier(
                    "D-meanflow-sampler", {z: flow_map_t_to_r.subs(r, s_mid), t: s_mid}, step=1
                ),
                rhs=flow_map_t_to_r,
                reason=(
                    r"$\sqrt{C_r/C_s}\sqrt{C_s/C_t} = \sqrt{C_r/C_t}$ and the means cancel: "
                    "the semigroup property of the flow."
                ),
                tag="numeric",
            ),
        ],
        symbols=(z, r, t, s_mid, m, q),
        references=("geng2025meanflow",),
        code=(f"{_MF}.sample",),
        tests=_MF_TESTS,
        domain={t: (0, 1), r: (0, 1), s_mid: (0, 1), z: (-3, 3), m: (-2, 2), q: (0.2, 3)},
    )
)

from . import _consistency_bindings, _few_step_bindings  # noqa: E402,F401  (their bindings)
