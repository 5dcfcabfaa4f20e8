"""The five core abstractions of genmath, each implemented once.

Modules: `schedules` and `path` (probability paths), `discrete` (discrete paths), and the
other abstractions (ELBO, change of variables, score, SDE/ODE). Import what you need from
the module that defines it; the public names are re-exported from `genmath`.
"""
