"""Run a function on several gloo processes of this machine and collect what each returns.

The processes are forked from the test process (cheap: torch and genmath are already
imported), rendezvous over TCP on 127.0.0.1 at a port the OS reported free, and pickle their
results to a temporary folder. A rank that raises fails the test with its traceback; a run
that hangs (a collective one rank never joins) is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import pathlib
import pickle
import socket
import tempfile
import time

import torch
import torch._dynamo  # noqa: F401  DDP imports it when built (2-3 s); once here, before forking
import torch.distributed as dist
import torch.multiprocessing as mp

# fork where the platform has it (Linux CI): no re-import of torch per process
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, fn, world_size, port, folder, args):
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # the suite's convention, also in module fixtures
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = fn(rank, world_size, *args)
        pathlib.Path(folder, f"{rank}.pickle").write_bytes(pickle.dumps(result))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _entry_like_torchrun(rank, fn, world_size, port, folder, args):
    """The environment torchrun gives each worker; ``fn`` initialises the group itself."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    result = fn(rank, world_size, *args)
    pathlib.Path(folder, f"{rank}.pickle").write_bytes(pickle.dumps(result))


def run_ranks(fn, world_size: int, *args, timeout: float = 120.0, like_torchrun=False) -> list:
    """``[fn(rank, world_size, *args) for rank in range(world_size)]``, each on its own
    process of one gloo process group (``like_torchrun``: with torchrun's environment
    variables instead, and ``fn`` calls ``init_process_group`` itself)."""
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(
            _entry_like_torchrun if like_torchrun else _entry,
            args=(fn, world_size, free_port(), folder, args),
            nprocs=world_size,
            join=False,
            start_method=START_METHOD,
        )
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise TimeoutError(f"{world_size} ranks did not finish within {timeout} s")
        return [
            pickle.loads(pathlib.Path(folder, f"{rank}.pickle").read_bytes())
            for rank in range(world_size)
        ]
