"""Run an exported BriskBERT (briskbert-export --format onnx) in onnxruntime, called like the model.

    encoder = briskbert.OnnxEncoder("my-briskbert.onnx")
    hidden = encoder(input_ids, attention_mask)           # torch tensors in, the graph's first output out, padded

The exported graph computes on the padded rows it is given, so a batch of mixed lengths would pay for its padding in
every layer (most of the work, on mixed GLUE batches: docs/speed.md). The encoder therefore sorts the rows by length and runs them as
micro-batches, each trimmed to its own longest row, as serving systems batch. Where to cut is a trade: every cut
saves padding and costs one more session call. `length_groups` picks the cuts that minimise padded tokens plus
one call's overhead (measured once per session, in tokens' worth of work) per micro-batch, so a batch of 32 mixed
GLUE rows runs as a handful of nearly unpadded calls. It then scatters the outputs back into the caller's order and
shape. Positions past a row's length are 0 in the output (the dtype's minimum for QA's start/end logits, as the
model gives them).
"""

import math
import time
import warnings

import numpy as np
import torch

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
WEIGHT_BITS_KEY = "briskbert_int8_weight_bits"  # an int8 graph's metadata (briskbert-export --int8): its weights'
QUANTIZED_ON_KEY = "briskbert_int8_quantized_on"  # bits, and the kind of CPU it was quantized on
MASKED_WITH_MIN = ("start_logits", "end_logits")


class OnnxEncoder:
    def __init__(self, path, intra_op_num_threads: int | None = None, token_budget: int = 4096,
                 max_batch_size: int = 64, call_cost_tokens: float | None = None,
                 providers=("CPUExecutionProvider",)):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # a spinning pool slows whatever the caller runs next on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))
        self.warn_if_quantized_for_another_cpu(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        unknown = sorted(set(self.input_names) - set(INPUT_NAMES))
        if unknown:
            raise ValueError(f"{path} takes inputs {unknown}, which briskbert-export graphs do not; export the model "
                             f"with briskbert-export --format onnx.")
        output = self.session.get_outputs()[0]
        self.output_name = output.name
        # token-level (last_hidden_state, MLM/NER logits, QA logits) when the output's second dimension is the
        # input's free sequence dimension in the graph
        sequence_dims = {i.shape[1] for i in self.session.get_inputs() if isinstance(i.shape[1], str)}
        self.token_level = len(output.shape) >= 2 and output.shape[1] in sequence_dims
        self.token_budget, self.max_batch_size = token_budget, max_batch_size
        self.call_cost_tokens = self.measure_call_cost() if call_cost_tokens is None else call_cost_tokens

    def warn_if_quantized_for_another_cpu(self, path) -> None:
        """onnxruntime adds u8 x s8 products in int16 pairs on a CPU without VNNI, where a graph's 8-bit weights
        saturate (and nothing in onnxruntime says so); a graph exported there has 7-bit weights, safe on both."""
        from .quantize import cpu_mismatch, has_vnni

        metadata = self.session.get_modelmeta().custom_metadata_map
        if WEIGHT_BITS_KEY not in metadata:
            return
        mismatch = cpu_mismatch(int(metadata[WEIGHT_BITS_KEY]), not has_vnni(), str(path),
                                "Export it again with 7-bit weights, which run accurately on both kinds "
                                "(briskbert-export --format onnx --int8 --int8-weight-bits 7, the default on a CPU "
                                "of this kind).")
        if mismatch:
            warnings.warn(mismatch, stacklevel=3)

    def measure_call_cost(self, long: int = 65) -> float:
        """One session call's fixed overhead in tokens' worth of work: how many tokens the time of a 1-token row
        would compute at the marginal cost per token of a `long`-token row (best of 3 each, after a warm-up)."""

        def seconds(length: int) -> float:
            shape = (1, length)
            feed = {name: np.ones(shape, np.int64) if name == "attention_mask" else np.zeros(shape, np.int64)
                    for name in self.input_names}
            self.session.run([self.output_name], feed)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                self.session.run([self.output_name], feed)
                times.append(time.perf_counter() - start)
            return min(times)

        short = seconds(1)
        per_token = max((seconds(long) - short) / (long - 1), 1e-9)
        return short / per_token

    def micro_batches(self, lengths: list[int]) -> list[list[int]]:
        return length_groups(lengths, self.call_cost_tokens, self.token_budget, self.max_batch_size)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"OnnxEncoder takes input_ids [batch, seq], got shape {tuple(input_ids.shape)}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        lengths = attention_mask.sum(-1)
        if not torch.equal(attention_mask.bool(), torch.arange(input_ids.shape[1]) < lengths[:, None]):
            raise ValueError("OnnxEncoder takes right-padded rows (the tokenizer's default padding_side='right').")
        lengths = [max(n, 1) for n in lengths.tolist()]  # an all-padding row still runs as one token
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        batch, seq = input_ids.shape
        output = None
        for rows in self.micro_batches(lengths):
            longest = max(lengths[i] for i in rows)
            feed = {name: inputs[name][rows, :longest].numpy() for name in self.input_names}
            (result,) = self.session.run([self.output_name], feed)
            result = torch.from_numpy(np.asarray(result))
            if output is None:
                shape = (batch, seq, *result.shape[2:]) if self.token_level else (batch, *result.shape[1:])
                fill = torch.finfo(result.dtype).min if self.output_name in MASKED_WITH_MIN else 0.0
                output = torch.full(shape, fill, dtype=result.dtype)
            if self.token_level:
                output[rows, :longest] = result
            else:
                output[rows] = result
        return output


def length_groups(lengths: list[int], call_cost: float, token_budget: int, max_batch_size: int) -> list[list[int]]:
    """Row indices sorted by length, cut into micro-batches where the work is least: each micro-batch costs its rows x
    its longest row (the padded tokens it computes) plus `call_cost`, and holds at most `max_batch_size` rows and
    `token_budget` padded tokens (a single longer row runs alone). Exact, by dynamic programming over the sorted rows:
    `best[end]` is the least cost of the `end` shortest rows."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    ordered = [lengths[i] for i in order]
    best, start_of = [0.0] + [math.inf] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = ordered[end - 1]
        for start in range(end - 1, max(end - max_batch_size, 0) - 1, -1):
            rows = end - start
            if rows > 1 and rows * longest > token_budget:
                break
            cost = best[start] + rows * longest + call_cost
            if cost < best[end]:
                best[end], start_of[end] = cost, start
    cuts, end = [], len(order)
    while end:
        cuts.append(order[start_of[end]:end])
        end = start_of[end]
    return cuts[::-1]
