"""Couplings of the global batch: the minibatch OT pairing over every rank's samples."""

from __future__ import annotations

import torch
import torch.distributed as dist

from .._implements import plumbing
from ..core._shapes import check_batch
from ..families.flow_matching import ot_coupling
from ._collectives import _control_device, _gather_rows, all_gather, is_distributed

SCOPES = ("global", "local")


@plumbing("gathers, slices and calls the family's ot_coupling; no formula of its own")
def pair_by_ot(
    x0: torch.Tensor, x1: torch.Tensor, *, scope: str = "global", group=None
) -> torch.Tensor:
    r"""The rows of ``x1`` paired with this rank's ``x0`` by the minibatch optimal-transport
    plan (`genmath.families.flow_matching.ot_coupling`, Tong et al. 2024), shape of ``x0``.

    ``scope="local"`` solves the assignment on this rank's batch alone, as
    ``cfm_loss(..., coupling="ot")`` does: with $W$ ranks of $B$ samples this is $W$
    independent plans on batches of $B$, not the plan of the batch of $WB$ that the
    training run is said to use. ``scope="global"`` all-gathers ``x0`` and ``x1`` from every
    rank, solves the one plan of the concatenated batch (on the group's rank 0, which
    broadcasts it, so every rank uses the same plan) and returns the rows of the gathered
    ``x1`` assigned to this rank's ``x0`` - the single-process coupling of the global batch.
    Pass the result as ``noise=`` to `cfm_loss` (with the default ``coupling="independent"``).

    The cost is the assignment of $WB$ points, $O((WB)^3)$, on one rank per step. Gradients
    flow into ``x1`` (through a differentiable gather) when it requires them; the plan itself
    is piecewise constant. Without a process group both scopes are the local one.
    """
    # a rank's shard of the global batch may be empty; the local plan needs samples
    check_batch(x0, "x0", empty=scope == "global" and is_distributed())
    if not isinstance(x1, torch.Tensor) or x1.shape != x0.shape:
        got = tuple(x1.shape) if isinstance(x1, torch.Tensor) else type(x1).__name__
        raise ValueError(f"x1 must have the shape of x0, {tuple(x0.shape)}; got {got}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "local" or not is_distributed():
        return x1[ot_coupling(x0, x1)]
    with torch.no_grad():
        gathered_x0, sizes = _gather_rows(x0.detach(), group)
    gathered_x1 = all_gather(x1, group=group) if x1.requires_grad else _gather_rows(x1, group)[0]
    rank = dist.get_rank(group)
    device = _control_device(group)
    if rank == 0:
        plan = ot_coupling(gathered_x0, gathered_x1.detach()).to(device)
    else:
        plan = torch.empty(sum(sizes), dtype=torch.long, device=device)
    source = 0 if group is None else dist.get_global_rank(group, 0)
    dist.broadcast(plan, src=source, group=group)
    start = sum(sizes[:rank])
    return gathered_x1[plan[start : start + sizes[rank]].to(x1.device)]
