"""neurodyn: adaptive dynamical systems — recurrent networks whose activity, error
signal and weights are ODEs (Pineda's recurrent backpropagation and its relatives)."""

import importlib.metadata

from ._activations import (
    Activation as Activation,
    activation_by_name as activation_by_name,
    identity as identity,
    logistic as logistic,
    sin as sin,
    softplus as softplus,
    tanh as tanh,
)
from ._dynamics import (
    adjoint_field as adjoint_field,
    forward_field as forward_field,
    parameter_cotangent as parameter_cotangent,
)
from ._gradients import (
    AbstractAdjointMethod as AbstractAdjointMethod,
    AbstractGradientMethod as AbstractGradientMethod,
    ImplicitDiff as ImplicitDiff,
    RecurrentBackprop as RecurrentBackprop,
    UnrolledBPTT as UnrolledBPTT,
    value_and_grad as value_and_grad,
)
from ._learning.analog import (
    AnalogRun as AnalogRun,
    PatternSchedule as PatternSchedule,
    analog_learning as analog_learning,
    learning_field as learning_field,
)
from ._learning.modes import (
    AbstractPatternMode as AbstractPatternMode,
    Deterministic as Deterministic,
    Stochastic as Stochastic,
)
from ._learning.train import (
    History as History,
    TrainResult as TrainResult,
    train as train,
)
from ._models.base import AbstractNetwork as AbstractNetwork
from ._models.first_order import (
    AbstractFirstOrderNetwork as AbstractFirstOrderNetwork,
    FirstOrderNetwork as FirstOrderNetwork,
    RateNetwork as RateNetwork,
)
from ._relax import (
    FixedPoint as FixedPoint,
    ODERelaxation as ODERelaxation,
    relax as relax,
)
from ._results import RESULTS as RESULTS
from ._trajectory import (
    adjoint_trajectory as adjoint_trajectory,
    trajectory as trajectory,
)


__version__ = importlib.metadata.version("neurodyn")
