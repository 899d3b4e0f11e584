"""Which packed rows each process reads, in which order: one global order that depends only on the seed, the epoch
and the position in it, whatever the number of processes.

The run reads one endless stream of rows: epoch e is a permutation of every row (seeded by `seed + e`), and the
epochs follow each other. Optimizer step s reads the stream's positions [s*G, (s+1)*G), G being the global batch
(micro-batch rows x processes x accumulation steps); micro-batch a of process k reads the micro-batch-sized slice
a*n + k of them (n processes). So every row is read once per epoch, and none is dropped or repeated to even out the
processes (accelerate's `even_batches` repeats rows); only a step that straddles two epochs can read a row twice,
once from each. And a step reads the same rows on 1 process accumulating 8 micro-batches as on 8 processes
accumulating 1: a run resumed on another number of processes, at the same global batch, reads exactly the rows the
uninterrupted run would have. (Each row's masks depend on the seed, the step and the row alone, see masking.py.)
"""

from collections.abc import Iterator

import torch


class GlobalOrderBatchSampler:
    def __init__(
        self, num_rows: int, micro_batch_size: int, seed: int, process_index: int = 0, num_processes: int = 1,
        accumulation: int = 1, start_step: int = 0,
    ):
        self.global_batch = micro_batch_size * num_processes * accumulation
        if num_rows < self.global_batch:
            raise ValueError(
                f"The training data has {num_rows} packed rows, fewer than one step's global batch of "
                f"{self.global_batch} ({micro_batch_size} rows x {num_processes} processes x {accumulation} "
                f"accumulation steps), so a step would read a row twice: use more data or a smaller batch."
            )
        self.num_rows, self.micro_batch_size, self.seed = num_rows, micro_batch_size, seed
        self.process_index, self.num_processes, self.accumulation = process_index, num_processes, accumulation
        self.start_step = start_step
        self._epoch, self._order = None, None

    def rows_of_epoch(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._order = torch.randperm(self.num_rows, generator=torch.Generator().manual_seed(self.seed + epoch))
            self._epoch = epoch
        return self._order

    def rows_at(self, position: int, count: int) -> list[int]:
        """The rows at global positions [position, position + count) of the stream."""
        rows = []
        while count:
            epoch, offset = divmod(position, self.num_rows)
            taken = self.rows_of_epoch(epoch)[offset:offset + count].tolist()
            rows += taken
            position, count = position + len(taken), count - len(taken)
        return rows

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            for micro_batch in range(self.accumulation):
                slot = micro_batch * self.num_processes + self.process_index
                yield self.rows_at(step * self.global_batch + slot * self.micro_batch_size, self.micro_batch_size)
            step += 1
