r"""The attractor landscape: every fixed and slow point of a network, classified by
its linear stability (Sussillo & Barak's method, for the continuous-time networks
$\tau\,dx/dt = -x + F(x)$ of every model).

- `search.py`: [`neurodyn.find_fixed_points`][], minimising the speed $q$ from many
    starts (the method is in its docstring).
- `starts.py`: the start states, checked or drawn near visited states
    ([`neurodyn.starts_near`][]).
- `dedup.py`: merging the end points that are one point.
- `kinds.py`: the kinds of points, classified from the eigenvalues of the
    linearisation.
- `results.py`: the result types ([`neurodyn.Landscape`][],
    [`neurodyn.LandscapeTrace`][], [`neurodyn.LandscapeEvent`][],
    [`neurodyn.UnstableManifolds`][]).
- `manifolds.py`: the saddles' unstable manifolds ([`neurodyn.unstable_manifolds`][]).
- `tracking.py`: the fixed points followed along learning
    ([`neurodyn.fixed_points_along`][]).
- `memory.py`: a content-addressable memory's landscape read against its memories
    ([`neurodyn.memory_landscape`][]).
- `checks.py`: the argument checks the functions share.
"""
