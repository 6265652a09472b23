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
from ._analysis.directions import (
    Direction as Direction,
    compare_directions as compare_directions,
)
from ._analysis.hessian import (
    hessian as hessian,
    hessian_along as hessian_along,
    hessian_eigenvalues as hessian_eigenvalues,
    hessian_vector_product as hessian_vector_product,
)
from ._analysis.landscape.manifolds import unstable_manifolds as unstable_manifolds
from ._analysis.landscape.memory import memory_landscape as memory_landscape
from ._analysis.landscape.results import (
    Landscape as Landscape,
    LandscapeEvent as LandscapeEvent,
    LandscapeTrace as LandscapeTrace,
    UnstableManifolds as UnstableManifolds,
)
from ._analysis.landscape.search import find_fixed_points as find_fixed_points
from ._analysis.landscape.starts import starts_near as starts_near
from ._analysis.landscape.tracking import fixed_points_along as fixed_points_along
from ._analysis.spectra import (
    adjoint_spectrum as adjoint_spectrum,
    almeida_check as almeida_check,
    linearisation as linearisation,
    spectral_distance as spectral_distance,
    spectrum as spectrum,
)
from ._analysis.stability import (
    StabilityLoss as StabilityLoss,
    StabilityMonitor as StabilityMonitor,
    StabilityTrace as StabilityTrace,
    first_stability_loss as first_stability_loss,
    stability_along as stability_along,
)
from ._dynamics import (
    adjoint_field as adjoint_field,
    forward_field as forward_field,
    learning_velocities as learning_velocities,
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
from ._gradients_ep import EquilibriumPropagation as EquilibriumPropagation
from ._gradients_phantom import PhantomGradient as PhantomGradient
from ._learning.analog import (
    AnalogRun as AnalogRun,
    PatternSchedule as PatternSchedule,
    analog_learning as analog_learning,
    learning_field as learning_field,
)
from ._learning.analog_method import AbstractAnalogMethod as AbstractAnalogMethod
from ._learning.continual_ep import ContinualEP as ContinualEP
from ._learning.full_system import FullSystem as FullSystem
from ._learning.jacobian_penalty import (
    JacobianPenalty as JacobianPenalty,
    jacobian_norm as jacobian_norm,
)
from ._learning.modes import (
    AbstractPatternMode as AbstractPatternMode,
    Deterministic as Deterministic,
    Stochastic as Stochastic,
)
from ._learning.rules import (
    DW1 as DW1,
    DW2 as DW2,
    DW3 as DW3,
    AbstractLearningRule as AbstractLearningRule,
    rule_direction as rule_direction,
)
from ._learning.semi_gradient import SemiGradient as SemiGradient
from ._learning.slow_manifold import SlowManifold as SlowManifold
from ._learning.train import (
    History as History,
    TrainResult as TrainResult,
    train as train,
)
from ._models.base import AbstractNetwork as AbstractNetwork
from ._models.cam import (
    Clamped as Clamped,
    ContentAddressableMemory as ContentAddressableMemory,
)
from ._models.energy import EnergyNetwork as EnergyNetwork
from ._models.first_order import (
    AbstractFirstOrderNetwork as AbstractFirstOrderNetwork,
    FirstOrderNetwork as FirstOrderNetwork,
    RateNetwork as RateNetwork,
)
from ._models.higher_order import HigherOrderNetwork as HigherOrderNetwork
from ._models.layered import (
    ImplicitLayer as ImplicitLayer,
    ImplicitRecurrentNetwork as ImplicitRecurrentNetwork,
    implicit_network as implicit_network,
)
from ._recall import (
    Recall as Recall,
    cue_state as cue_state,
    memory_start as memory_start,
    nearest_memory as nearest_memory,
    recall as recall,
)
from ._relax import FixedPoint as FixedPoint, relax as relax
from ._results import RESULTS as RESULTS
from ._sharding import (
    pattern_sharding as pattern_sharding,
    shard_patterns as shard_patterns,
)
from ._solvers.base import (
    AbstractSteadyStateSolver as AbstractSteadyStateSolver,
    Relaxation as Relaxation,
)
from ._solvers.fallback import Fallback as Fallback
from ._solvers.iteration import (
    Anderson as Anderson,
    FixedPointIteration as FixedPointIteration,
)
from ._solvers.newton import NewtonKrylov as NewtonKrylov
from ._solvers.ode import ODERelaxation as ODERelaxation
from ._solvers.rk4 import RK4 as RK4
from ._trajectory import (
    adjoint_trajectory as adjoint_trajectory,
    trajectory as trajectory,
)


__version__ = importlib.metadata.version("neurodyn")
