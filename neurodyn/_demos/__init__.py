"""The paper experiments, each a function `run(out, *, small=False) -> metrics`
that fills the run folder `out` (see `neurodyn demo --list`)."""

from . import analog_xor, first_order, xor


DEMOS = {
    "xor": xor.run,
    "analog-xor": analog_xor.run,
    "first-order": first_order.run,
}
