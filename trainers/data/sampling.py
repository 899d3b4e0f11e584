"""Which packed rows each process reads, in which order: exactly once per epoch, and resumable at any batch.

Every epoch is a fresh permutation of all rows (seeded by `seed + epoch`); process k of n takes every n-th
row of it, so processes never share a row and no row is dropped or repeated to even out the shards
(accelerate's default `even_batches` repeats rows). Each process reads an endless stream, epoch after
epoch, and batch b of that stream is a pure function of (seed, b), so resuming at batch b reads what the
uninterrupted run would have read.
"""

from collections.abc import Iterator

import torch


class ShardedBatchSampler:
    def __init__(
        self, num_rows: int, batch_size: int, seed: int, process_index: int = 0, num_processes: int = 1,
        start_batch: int = 0,
    ):
        if num_rows < num_processes:
            raise ValueError(
                f"The training data has {num_rows} packed rows, fewer than the {num_processes} processes: "
                f"use more data or fewer processes."
            )
        self.num_rows, self.batch_size, self.seed = num_rows, batch_size, seed
        self.process_index, self.num_processes = process_index, num_processes
        self.start_batch = start_batch

    def rows_of_epoch(self, epoch: int) -> torch.Tensor:
        order = torch.randperm(self.num_rows, generator=torch.Generator().manual_seed(self.seed + epoch))
        return order[self.process_index::self.num_processes]

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = len(range(self.process_index, self.num_rows, self.num_processes))
        position = self.start_batch * self.batch_size  # rows of this process's stream already read
        epoch, offset = divmod(position, per_epoch)
        rows = self.rows_of_epoch(epoch)[offset:].tolist()
        while True:
            while len(rows) < self.batch_size:
                epoch += 1
                rows += self.rows_of_epoch(epoch).tolist()
            yield rows[: self.batch_size]
            rows = rows[self.batch_size:]

