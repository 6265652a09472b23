import os
import pathlib


# The test problems are tiny, so XLA's compile time, not run time, dominates the
# suite: compile with the cheap LLVM pipeline (measured: 35% less CPU per compile of
# the default relaxation) and the older elemental emitters instead of XLA CPU's
# fusion emitters (a further 20-25% off the first `value_and_grad`: 9.0 -> 7.1
# CPU-s, best of three). Set before JAX starts its backend.
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_backend_optimization_level=0",
        "--xla_llvm_disable_expensive_passes=true",
        "--xla_cpu_use_fusion_emitters=false",
    ]
).strip()

import jax  # noqa: E402


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Compilation dominates the test time: keep compiled programs between runs.
_cache = pathlib.Path(__file__).resolve().parent.parent / ".cache" / "jax"
jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("JAX_COMPILATION_CACHE_DIR", str(_cache)),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.random as jr  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def getkey():
    key = jr.key(5678)

    def _getkey():
        nonlocal key
        key, sub = jr.split(key)
        return sub

    return _getkey


# Modules by their measured share of the default tier, largest first (seconds of
# test durations, cold compilation cache, 3 December 2026). `make test` hands whole
# modules to its two workers in collection order (`--dist loadscope
# --no-loadscope-reorder`); starting with the longest leaves the short ones to even
# out the workers' loads at the end.
LONGEST_FIRST = (
    "test_relax",  # 77
    "test_analysis",  # 47
    "test_solvers",  # 44
    "test_analog",  # 41
    "test_oracles",  # 37
    "test_gradients",  # 32
    "test_layered",  # 31
    "test_settings",  # 30
    "test_cam",  # 30
    "test_zhu_rosenbaum",  # 29
    "test_learning_rules",  # 25
    "test_faults",  # 23
    "test_bad_input",  # 21
    "test_docs",  # 20
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


def pytest_sessionfinish(session):
    """Under `make coverage`, save this process's line data as soon as its tests are
    done: pytest-xdist gives a worker 10 s to exit before it kills it, and a worker
    that holds gigabytes of compiled programs can take longer, which lost the data
    it would have saved at exit (one worker's modules read 42-64% covered)."""
    import coverage

    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.save()
