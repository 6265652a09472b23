"""The paper experiments, each a function `run(out, *, small=False) -> metrics`
that fills the run folder `out` (see `neurodyn demo --list`)."""

from . import (
    analog_xor,
    backward_tuning,
    cam_figure1,
    first_order,
    higher_order_parity,
    implicit_pendulum,
    implicit_xor,
    learning_rules,
    stability,
    xor,
    zhu_rosenbaum_digits,
    zhu_rosenbaum_regression,
)


DEMOS = {
    "xor": xor.run,
    "analog-xor": analog_xor.run,
    "first-order": first_order.run,
    "cam-figure1": cam_figure1.run,
    "higher-order-parity": higher_order_parity.run,
    "stability": stability.run,
    "zhu-rosenbaum-regression": zhu_rosenbaum_regression.run,
    "zhu-rosenbaum-digits": zhu_rosenbaum_digits.run,
    "implicit-xor": implicit_xor.run,
    "implicit-pendulum": implicit_pendulum.run,
    "backward-tuning": backward_tuning.run,
    "learning-rules": learning_rules.run,
}
