"""One way to set a relaxation: every public function that relaxes takes
`relaxation=nd.Relaxation(...)`, honours it, and still accepts the old keywords
(`solver=`, `rtol=`, ...) with a DeprecationWarning saying what to write instead; one
`throw` policy (docs/settings.md).

One 3-unit network and one 3-unit memory serve every test: compile time dominates."""

import pathlib
import re

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import neurodyn as nd


W = jnp.array([[0.1, -0.4, 0.2], [0.3, 0.0, -0.2], [-0.1, 0.5, 0.1]])
NET = nd.RateNetwork(W, activation="tanh")
I = jnp.array([[0.3, -0.2, 0.1], [-0.1, 0.4, 0.2]])
T = jnp.array([[0.2, 0.1, -0.3], [0.0, -0.2, 0.4]])
STACK = jax.tree.map(
    lambda *a: jnp.stack(a), NET, eqx.tree_at(lambda m: m.weights, NET, 0.5 * W)
)
CAM = nd.ContentAddressableMemory(
    jnp.array([[0.0, 0.8, -0.3], [0.8, 0.0, 0.2], [-0.3, 0.2, 0.0]]),
    jnp.array([True, True, False]),
)
MEMORIES = jnp.array([[0.9, 0.9, 0.5]])

# The same settings, new and old spelling (not the defaults, so that a function
# ignoring them would differ).
OLD = dict(solver=nd.Anderson(), rtol=1e-10, atol=1e-12)
NEW = nd.Relaxation(nd.Anderson(), rtol=1e-10, atol=1e-12)
# A budget no relaxation can settle in: one iteration from x0 = 0.5.
STARVED = nd.Relaxation(nd.Anderson(), max_steps=1)


def _recall(**s):
    return nd.recall(CAM, MEMORIES, jnp.array([True, False, False]), MEMORIES, **s)


# Every public function that relaxes, with an output to compare.
ENTRY_POINTS = {
    "relax": lambda **s: nd.relax(NET, I, **s).x,
    "value_and_grad": lambda **s: nd.value_and_grad(NET, I, T, **s),
    "train": lambda **s: (
        nd.train(
            NET, I, T, optimizer=optax.sgd(0.1), steps=1, progress=False, **s
        ).model
    ),
    "rule_direction": lambda **s: nd.rule_direction(nd.DW1(), NET, I, T, **s)[:2],
    "jacobian_norm": lambda **s: nd.jacobian_norm(NET, I, key=jr.key(0), **s),
    "hessian": lambda **s: nd.hessian(NET, I, T, **s),
    "hessian_vector_product": lambda **s: nd.hessian_vector_product(
        NET, I, T, jnp.ones((3, 3)), **s
    ),
    "hessian_along": lambda **s: nd.hessian_along(STACK, I, T, **s),
    "compare_directions": lambda **s: [
        d.cosine
        for d in nd.compare_directions(
            NET, I, T, methods=[nd.ImplicitDiff()], repeats=1, **s
        )
    ],
    "recall": lambda **s: _recall(**s).x,
    "stability_along": lambda **s: (
        nd.stability_along(STACK, I, newton_iterations=1, **s).x
    ),
}
# Where a failed relaxation comes back as a result rather than an error.
RETURNS_FAILURE = {"relax", "recall", "stability_along"}


def _close(a, b):
    return all(
        np.allclose(x, y, rtol=1e-12, atol=1e-14)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# One helper turns the old keywords into a Relaxation for every entry point: two of
# them in the default tier, the rest in the slow one. (That `relaxation=` reaches no
# deprecated spelling further down is checked by every test: pyproject.toml makes
# the warning an error.)
@pytest.mark.parametrize(
    "name",
    [
        n
        if n in ("relax", "value_and_grad")
        else pytest.param(n, marks=pytest.mark.slow)
        for n in sorted(ENTRY_POINTS)
    ],
)
def test_old_keywords_warn_and_give_the_same_answer(name):
    call = ENTRY_POINTS[name]
    new = call(relaxation=NEW)
    prefix = re.escape(f"{name}(") + r".*" + re.escape(" is deprecated; write ")
    wanted = prefix + re.escape(f"{name}(relaxation=nd.Relaxation(solver=nd.Anderson(")
    with pytest.warns(DeprecationWarning, match=wanted):
        old = call(**OLD)
    assert _close(new, old)


# Each entry point is one more compilation: the ones whose relaxation reaches the
# solver by the same route as another's (rule_direction, jacobian_norm and
# compare_directions as value_and_grad's; the Hessian products as hessian's; the
# continuation as StabilityMonitor's, below) in the slow tier.
HONOURS_IN_DEFAULT_TIER = {"relax", "value_and_grad", "train", "hessian", "recall"}


@pytest.mark.parametrize(
    "name",
    [
        n if n in HONOURS_IN_DEFAULT_TIER else pytest.param(n, marks=pytest.mark.slow)
        for n in sorted(ENTRY_POINTS)
    ],
)
def test_every_entry_point_honours_its_relaxation(name):
    """A budget of one step: an entry point that ignored `relaxation` would
    settle."""
    call = ENTRY_POINTS[name]
    if name == "stability_along":
        # the first relaxation only starts the Newton continuation: one Newton
        # step from a starved start leaves a residual a settled one does not
        starved = nd.stability_along(STACK, I, newton_iterations=1, relaxation=STARVED)
        settled = nd.stability_along(STACK, I, newton_iterations=1, relaxation=NEW)
        assert float(jnp.max(starved.residual[0])) > 1e-8
        assert float(jnp.max(settled.residual[0])) < 1e-12
    elif name in RETURNS_FAILURE:
        if name == "relax":
            fp = nd.relax(NET, I, relaxation=STARVED)
        else:
            fp = _recall(relaxation=STARVED)
        assert not np.any(np.asarray(fp.converged))
    else:
        with pytest.raises(Exception, match="did not converge"):
            jax.block_until_ready(call(relaxation=STARVED))


def test_stability_monitor_honours_its_relaxation():
    residuals = {}
    for label, relaxation in (("starved", STARVED), ("settled", NEW)):
        monitor = nd.StabilityMonitor(
            I, on_loss="continue", newton_iterations=1, relaxation=relaxation
        )
        monitor(0, NET)
        residuals[label] = float(jnp.max(monitor.residuals[0]))
    assert residuals["starved"] > 1e-8 > 1e-12 > residuals["settled"]


def test_analog_learning_honours_its_relaxation():
    """The attractor loss of the saved models relaxes with `relaxation`."""
    kwargs = dict(eta=0.1, t1=0.2, saveat=jnp.array([0.0, 0.2]))
    run = nd.analog_learning(NET, I, T, relaxation=NEW, **kwargs)
    assert np.all(np.isfinite(np.asarray(run.loss)))
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(
            nd.analog_learning(NET, I, T, relaxation=STARVED, **kwargs).loss
        )


# A function with its own defaults names them in the replacement (stability_along:
# one more compilation, hence the slow tier).
@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: nd.relax(NET, I, rtol=1e-7),
            "relax(rtol=1e-07) is deprecated; write "
            "relax(relaxation=nd.Relaxation(rtol=1e-07)).",
        ),
        pytest.param(
            lambda: nd.stability_along(STACK, I, rtol=1e-9),
            "stability_along(rtol=1e-09) is deprecated; write stability_along("
            "relaxation=nd.Relaxation(rtol=1e-09, atol=1e-10)).",
            marks=pytest.mark.slow,
        ),
    ],
    ids=["relax", "stability_along"],
)
def test_deprecation_says_exactly_what_to_write(call, message):
    with pytest.warns(DeprecationWarning) as record:
        call()
    assert str(record[0].message).startswith(message)


def test_relaxation_argument_errors():
    with pytest.raises(ValueError, match="not beside it"):
        nd.relax(NET, I, relaxation=NEW, rtol=1e-7)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rtl'"):
        nd.relax(NET, I, rtl=1e-7)
    # (under the tests' jaxtyping hook, its type check speaks first)
    with pytest.raises(TypeError, match="relaxation"):
        nd.value_and_grad(NET, I, T, relaxation=dict(rtol=1e-7))
    with pytest.raises(ValueError, match="`rtol` must be a positive finite number"):
        nd.Relaxation(rtol=0.0)
    with pytest.raises(TypeError, match="max_steps"):
        nd.Relaxation(max_steps=1.5)
    with pytest.raises(ValueError, match="`solver` must be a steady-state solver"):
        nd.Relaxation("anderson")


def test_relaxation_defaults_and_diffrax_solvers():
    default = nd.Relaxation()
    assert (default.rtol, default.atol, default.t_max, default.max_steps) == (
        1e-6,
        1e-8,
        None,
        65_536,
    )
    assert default.attractors_only is True
    assert isinstance(default.solver, nd.Fallback)
    assert _close(nd.relax(NET, I).x, nd.relax(NET, I, relaxation=default).x)
    ode = nd.Relaxation(diffrax.Tsit5(), rtol=1e-10, atol=1e-12)
    assert isinstance(ode.solver, nd.ODERelaxation)
    assert isinstance(nd.Relaxation(diffrax.Dopri5()).solver.solver, diffrax.Dopri5)


# One more compilation (an ODE relaxation at tight tolerances), hence the slow tier;
# the default tier checks that the diffrax solver is the one wrapped (above).
@pytest.mark.slow
def test_a_diffrax_solver_relaxes_to_the_same_fixed_point():
    ode = nd.Relaxation(diffrax.Tsit5(), rtol=1e-10, atol=1e-12)
    assert np.allclose(
        nd.relax(NET, I, relaxation=ode).x,
        nd.relax(NET, I, relaxation=NEW).x,
        atol=1e-9,
    )


def test_throw_policy():
    """`throw=True` raises; `throw=False` returns the failure in the result.
    Defaults: False where the relaxation's outcome is what is returned (`relax`,
    `recall`), True where it is a by-product (`rule_direction`); functions without
    a result to carry it always raise (tested above)."""
    assert not np.any(np.asarray(nd.relax(NET, I, relaxation=STARVED).converged))
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(nd.relax(NET, I, relaxation=STARVED, throw=True).x)
    assert not np.any(np.asarray(_recall(relaxation=STARVED).converged))
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(_recall(relaxation=STARVED, throw=True).x)
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(
            nd.rule_direction(nd.DW1(), NET, I, T, relaxation=STARVED)[1]
        )
    *_, fp = nd.rule_direction(nd.DW1(), NET, I, T, relaxation=STARVED, throw=False)
    assert not np.any(np.asarray(fp.converged))


def test_no_tolerance_or_step_limit_is_written_outside_its_definition():
    """Every relaxation tolerance and step limit is a named constant of
    `neurodyn/_solvers/base.py` (discrete-time networks do not relax)."""
    root = pathlib.Path(nd.__file__).parent
    literal = re.compile(
        r"(max_steps|rtol|atol|t_max|max_krylov)\w*\s*(:[^=]*)?=\s*[0-9][0-9_.e+-]*\s*[,)]?$"
    )
    found = [
        f"{path.relative_to(root)}:{i}: {line.strip()}"
        for path in root.rglob("*.py")
        if path.parts[-2] != "discrete" and path != root / "_solvers" / "base.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line) or re.search(r"\b(65_?536|1_000_000)\b", line)
    ]
    assert found == []
