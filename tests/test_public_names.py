"""Every public name of `neurodyn` and `neurodyn.discrete` has a value test: one that
checks what the name computes (against a formula, NumPy or a documented number), not
only that it runs or raises. A new public name fails here until it gets one.

Abstract bases are exercised through the subclass tests listed; result types
(`FixedPoint`, `History`, ...) through the tests that check their fields."""

import pathlib
import re
import types

import pytest

import neurodyn as nd
import neurodyn.discrete as ndd


VALUE_TESTS = {
    nd: {
        "AbstractAdjointMethod": ["test_gradients_match_numpy_finite_differences"],
        "AbstractAnalogMethod": [
            "test_slow_manifold_follows_the_full_system",
            "test_slow_manifold_error_shrinks_like_eps_and_eps_squared",
        ],
        "AbstractFirstOrderNetwork": ["test_spectrum_and_linearisation_at_tau"],
        "AbstractGradientMethod": ["test_gradients_match_numpy_finite_differences"],
        "AbstractLearningRule": ["test_train_with_rule_applies_the_rule"],
        "AbstractNetwork": ["test_matches_finite_differences"],
        "AbstractPatternMode": ["test_stochastic_mode_follows_its_seed"],
        "AbstractSteadyStateSolver": ["test_solver_reaches_the_reference"],
        "Activation": ["test_user_built_activation_drives_a_network"],
        "AnalogRun": ["test_analog_learning_follows_the_gradient_flow"],
        "Anderson": ["test_solver_reaches_the_reference"],
        "Clamped": ["test_master_is_eq_31_with_thresholds"],
        "ContinualEP": ["test_continual_ep_approaches_ep_as_its_rate_vanishes"],
        "FullSystem": [
            "test_tau_rescales_time",
            "test_solver_changes_the_work_not_the_result",
        ],
        "SlowManifold": [
            "test_slow_manifold_follows_the_full_system",
            "test_order_zero_slow_manifold_is_the_gradient_flow",
            "test_slow_manifold_error_shrinks_like_eps_and_eps_squared",
        ],
        "learning_velocities": [
            "test_learning_velocities_equal_dense_per_pattern_jacobians",
            "test_first_order_velocity_is_pinedas_outer_product",
        ],
        "ContentAddressableMemory": ["test_recall_from_partial_and_full_cues"],
        "DW1": ["test_dw1_is_eq_2_6"],
        "DW2": ["test_dw2_is_a_gradient_step_on_the_reparameterisation"],
        "DW3": ["test_dw3_is_the_linearisation_of_dw2"],
        "Deterministic": ["test_deterministic_sgd_is_summed_gradient_descent"],
        "Fallback": ["test_fallback_rescues_a_failed_iteration"],
        "FirstOrderNetwork": ["test_trajectory_is_rk4_at_every_sampled_time"],
        "FixedPoint": ["test_trajectories_end_at_the_fixed_points"],
        "FixedPointIteration": ["test_solver_reaches_the_reference"],
        "HigherOrderNetwork": ["test_matches_finite_differences"],
        "History": ["test_carry_over_starts_from_the_last_state"],
        "ImplicitDiff": ["test_gradients_match_numpy_finite_differences"],
        "ImplicitLayer": ["test_one_layer_closed_form"],
        "ImplicitRecurrentNetwork": ["test_two_layer_closed_form"],
        "NewtonKrylov": ["test_solver_reaches_the_reference"],
        "ODERelaxation": ["test_solver_reaches_the_reference"],
        "PatternSchedule": ["test_pattern_schedule_restarts_the_error_signal"],
        "RESULTS": ["test_semi_gradient_within_documented_bound"],
        "RK4": ["test_solver_reaches_the_reference"],
        "RateNetwork": ["test_trajectory_is_rk4_at_every_sampled_time"],
        "Relaxation": ["test_every_entry_point_honours_its_relaxation"],
        "Recall": ["test_recall_from_partial_and_full_cues"],
        "RecurrentBackprop": ["test_gradients_match_numpy_finite_differences"],
        "SemiGradient": ["test_semi_gradient_one_layer_formula"],
        "StabilityLoss": ["test_fold_when_a_fixed_point_vanishes"],
        "StabilityMonitor": ["test_monitor_continue_records_without_stopping"],
        "StabilityTrace": [
            "test_saddle_node_crossing_found_where_the_weight_passes_one"
        ],
        "Stochastic": ["test_stochastic_mode_follows_its_seed"],
        "TrainResult": ["test_deterministic_sgd_is_summed_gradient_descent"],
        "UnrolledBPTT": ["test_gradients_match_numpy_finite_differences"],
        "activation_by_name": ["test_builtin_activation_and_derivative"],
        "adjoint_field": ["test_trajectories_end_at_the_fixed_points"],
        "adjoint_spectrum": ["test_spectrum_and_linearisation_at_tau"],
        "adjoint_trajectory": ["test_adjoint_trajectory_is_rk4_at_every_sampled_time"],
        "almeida_check": [
            "test_spectra_are_numpys_eigenvalues_of_the_explicit_jacobian"
        ],
        "analog_learning": ["test_analog_learning_follows_the_gradient_flow"],
        "cue_state": ["test_recall_from_partial_and_full_cues"],
        "first_stability_loss": ["test_fold_when_a_fixed_point_vanishes"],
        "forward_field": ["test_forward_and_learning_fields_are_the_numpy_equations"],
        "hessian": ["test_hessian_matches_finite_differences_of_the_gradient"],
        "hessian_along": ["test_hessian_along_a_stack_is_the_closed_form"],
        "hessian_eigenvalues": ["test_hessian_vector_product_is_dense_h_times_v"],
        "hessian_vector_product": ["test_hessian_vector_product_is_dense_h_times_v"],
        "identity": ["test_builtin_activation_and_derivative"],
        "implicit_network": ["test_exact_gradient_matches_finite_differences"],
        "learning_field": ["test_forward_and_learning_fields_are_the_numpy_equations"],
        "linearisation": ["test_spectrum_and_linearisation_at_tau"],
        "logistic": ["test_builtin_activation_and_derivative"],
        "memory_start": ["test_slave_returns_to_every_memory"],
        "nearest_memory": ["test_recall_from_partial_and_full_cues"],
        "parameter_cotangent": ["test_closed_form_equals_generic"],
        "pattern_sharding": ["test_pattern_sharding_splits_the_pattern_axis"],
        "recall": ["test_recall_from_partial_and_full_cues"],
        "relax": ["test_gradients_match_numpy_finite_differences"],
        "rule_direction": ["test_dw1_is_eq_2_6"],
        "shard_patterns": ["test_sharded_patterns_give_the_unsharded_results"],
        "sin": ["test_builtin_activation_and_derivative"],
        "softplus": ["test_builtin_activation_and_derivative"],
        "spectral_distance": [
            "test_spectra_are_numpys_eigenvalues_of_the_explicit_jacobian"
        ],
        "spectrum": ["test_spectrum_and_linearisation_at_tau"],
        "stability_along": [
            "test_saddle_node_crossing_found_where_the_weight_passes_one"
        ],
        "tanh": ["test_builtin_activation_and_derivative"],
        "train": ["test_deterministic_sgd_is_summed_gradient_descent"],
        "trajectory": ["test_trajectory_is_rk4_at_every_sampled_time"],
        "value_and_grad": ["test_gradients_match_numpy_finite_differences"],
        "Landscape": [
            "test_hopfield_network_stores_its_patterns_as_its_only_attractors"
        ],
        "LandscapeEvent": [
            "test_saddle_node_bifurcations_are_reported_at_the_right_step"
        ],
        "LandscapeTrace": [
            "test_saddle_node_bifurcations_are_reported_at_the_right_step"
        ],
        "UnstableManifolds": ["test_trained_cam_figure1_landscape"],
        "find_fixed_points": ["test_two_unit_network_has_its_three_fixed_points"],
        "fixed_points_along": [
            "test_saddle_node_bifurcations_are_reported_at_the_right_step"
        ],
        "memory_landscape": [
            "test_memory_landscape_counts_memories_saddles_and_spurious_attractors"
        ],
        "starts_near": ["test_starts_near_draws_visited_states_with_noise"],
        "unstable_manifolds": ["test_trained_cam_figure1_landscape"],
        "EnergyNetwork": ["test_energy_network_descends_its_energy"],
        "EquilibriumPropagation": [
            "test_equilibrium_propagation_converges_at_its_order"
        ],
        "PhantomGradient": [
            "test_phantom_gradient_approaches_the_exact_gradient",
            "test_jacobian_free_is_its_formula",
        ],
        "Direction": ["test_compare_directions_reports_angles_and_costs"],
        "compare_directions": ["test_compare_directions_reports_angles_and_costs"],
        "JacobianPenalty": [
            "test_jacobian_penalty_gradient_matches_finite_differences"
        ],
        "jacobian_norm": [
            "test_jacobian_norm_is_unbiased",
            "test_jacobian_norm_with_targets_is_the_masters",
        ],
    },
    ndd: {
        "AbsoluteValue": ["test_criterion_weights_equal_their_formulas"],
        "AbstractCriterion": ["test_observable_fit_is_eq_12"],
        "AbstractGuard": ["test_guard_argument_shapes_the_backward_pass"],
        "AbstractSampleCriterion": ["test_criterion_weights_equal_their_formulas"],
        "AbstractUnit": ["test_unguarded_backward_tuning_is_the_gradient"],
        "AdamRun": ["test_bptt_adam_is_adam_on_the_bptt_gradient"],
        "Adjustment": ["test_lnl_reverse_engineering_reaches_tolerance"],
        "Biweight": ["test_criterion_weights_equal_their_formulas"],
        "Boolean": ["test_criterion_weights_equal_their_formulas"],
        "DiscreteNetwork": ["test_bptt_adam_is_adam_on_the_bptt_gradient"],
        "GuardProfile": ["test_guard_profile_is_eq_5"],
        "IntegrateAndFire": ["test_unguarded_backward_tuning_is_the_gradient"],
        "L2": ["test_criterion_weights_equal_their_formulas"],
        "Linear": ["test_bptt_adam_is_adam_on_the_bptt_gradient"],
        "LinearNonLinear": ["test_second_order_step_solves_its_least_squares_system"],
        "ObservableFit": ["test_observable_fit_is_eq_12"],
        "Problem": ["test_lnl_reverse_engineering_reaches_tolerance"],
        "ReweightedL0": ["test_criterion_weights_equal_their_formulas"],
        "ReweightedL1": ["test_criterion_weights_equal_their_formulas"],
        "SecondOrderStep": ["test_second_order_step_solves_its_least_squares_system"],
        "SoftMax": ["test_unguarded_backward_tuning_is_the_gradient"],
        "Trajectory": ["test_second_order_step_solves_its_least_squares_system"],
        "Tuning": ["test_unguarded_backward_tuning_is_the_gradient"],
        "Unguarded": ["test_unguarded_backward_tuning_is_the_gradient"],
        "adjust": ["test_lnl_reverse_engineering_reaches_tolerance"],
        "backward_tuning": ["test_guard_argument_shapes_the_backward_pass"],
        "bptt_adam": ["test_bptt_adam_is_adam_on_the_bptt_gradient"],
        "decay_fit": ["test_decay_fit_recovers_an_exponential"],
        "line_search": ["test_lnl_reverse_engineering_reaches_tolerance"],
        "observed": ["test_unguarded_backward_tuning_is_the_gradient"],
        "pseudo_inverse": ["test_second_order_step_solves_its_least_squares_system"],
        "random_network": ["test_unguarded_backward_tuning_is_the_gradient"],
        "reverse_engineering_problem": [
            "test_lnl_reverse_engineering_reaches_tolerance"
        ],
        "second_order_step": ["test_second_order_step_solves_its_least_squares_system"],
        "simulate": ["test_bptt_adam_is_adam_on_the_bptt_gradient"],
        "tune": ["test_unguarded_backward_tuning_is_the_gradient"],
        "weight_gradient": ["test_unguarded_backward_tuning_is_the_gradient"],
    },
}


def public_names(module):
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
    }


@pytest.mark.parametrize("module", [nd, ndd], ids=lambda m: m.__name__)
def test_every_public_name_has_a_value_test(module):
    registry = VALUE_TESTS[module]
    missing = sorted(public_names(module) - set(registry))
    assert not missing, f"Public names without a value test in VALUE_TESTS: {missing}"
    stale = sorted(set(registry) - public_names(module))
    assert not stale, f"VALUE_TESTS names that are no longer public: {stale}"


def defined_tests():
    """Names of the test functions defined in tests/test_*.py (by `def`, so a test
    that moves between files stays found)."""
    folder = pathlib.Path(__file__).parent
    pattern = re.compile(r"^\s*def (test_\w+)\(", re.MULTILINE)
    return {m for f in folder.glob("test_*.py") for m in pattern.findall(f.read_text())}


@pytest.mark.parametrize("module", [nd, ndd], ids=lambda m: m.__name__)
def test_every_listed_value_test_exists(module):
    defined = defined_tests()
    for name, tests in VALUE_TESTS[module].items():
        assert tests, name
        for test in tests:
            assert test in defined, f"{name}: no test function {test}"
