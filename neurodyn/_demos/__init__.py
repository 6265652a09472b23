"""The paper experiments, each a function `run(out, *, small=False) -> metrics`
that fills the run folder `out` (see `neurodyn demo --list`)."""

from . import first_order


DEMOS = {
    "first-order": first_order.run,
}
