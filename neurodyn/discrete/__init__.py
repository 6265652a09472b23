"""Discrete-time recurrent networks and backward tuning (Alexandre, Drumond, Hinault
& Viéville, "Backward tuning", Inria RR-9100)."""

from ._adjust import (
    Adjustment as Adjustment,
    SecondOrderStep as SecondOrderStep,
    adjust as adjust,
    line_search as line_search,
    pseudo_inverse as pseudo_inverse,
    second_order_step as second_order_step,
)
from ._backward import (
    AbstractGuard as AbstractGuard,
    GuardProfile as GuardProfile,
    Tuning as Tuning,
    Unguarded as Unguarded,
    backward_tuning as backward_tuning,
    observed as observed,
    tune as tune,
    weight_gradient as weight_gradient,
)
from ._criteria import (
    L2 as L2,
    AbsoluteValue as AbsoluteValue,
    AbstractCriterion as AbstractCriterion,
    AbstractSampleCriterion as AbstractSampleCriterion,
    Biweight as Biweight,
    Boolean as Boolean,
    ObservableFit as ObservableFit,
    ReweightedL0 as ReweightedL0,
    ReweightedL1 as ReweightedL1,
)
from ._network import (
    DiscreteNetwork as DiscreteNetwork,
    Trajectory as Trajectory,
    random_network as random_network,
    simulate as simulate,
)
from ._reverse_engineering import (
    AdamRun as AdamRun,
    Problem as Problem,
    bptt_adam as bptt_adam,
    decay_fit as decay_fit,
    reverse_engineering_problem as reverse_engineering_problem,
)
from ._units import (
    AbstractUnit as AbstractUnit,
    IntegrateAndFire as IntegrateAndFire,
    Linear as Linear,
    LinearNonLinear as LinearNonLinear,
    SoftMax as SoftMax,
)
