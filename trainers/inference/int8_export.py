"""int8 for serving: a `quantize`d BriskBERT saved as an int8 folder, or carried into an int8 ONNX graph for
onnxruntime; what `briskbert-export --int8` runs.

    mean, worst = export_int8("my-briskbert", "my-briskbert-int8/")
    mean, worst = export_int8_onnx("my-briskbert", "my-briskbert-int8.onnx")

The graph is the fp32 export (trainers/conversion/export.py) of the int8 model with each Int8Linear written in ops
ONNX has, then quantized by onnxruntime on exactly the recipe's int8 matmuls. Both check themselves against the fp32
model on real sentences it was not calibrated on.
"""

import contextlib
import copy
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..conversion.export import OUTPUT_NAMES, export_onnx, load_briskbert, load_tokenizer, real_batch
from .onnx_encoder import QUANTIZED_ON_KEY, WEIGHT_BITS_KEY, OnnxEncoder
from .quantize import (
    INT8_CONFIG_KEY,
    Int8Linear,
    accumulation_name,
    int16_pairs,
    load_quantized,
    quantize,
    save_quantized,
)

INT8_CHECK_SKIP = 256  # the int8 check's sentences come after the 256 that quantize() calibrates on by default


def export_int8(folder, output, method: str = "smooth-outliers", max_length: int = 128,
                weight_bits: int | None = None) -> tuple[float, float]:
    """Quantize the BriskBERT in `folder` (briskbert.quantize) and write the int8 folder (save_quantized), then run it
    beside the fp32 model on real SST-2 sentences it was not calibrated on; returns the mean and min cosine of their
    first outputs, row by row."""
    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    tokenizer = load_tokenizer(folder)
    save_quantized(quantize(model, method, tokenizer=tokenizer, weight_bits=weight_bits), output, tokenizer=tokenizer)
    int8 = load_quantized(output)
    name = OUTPUT_NAMES[type(model).__name__][0]
    return int8_agreement(model, tokenizer, max_length, lambda check: getattr(int8(**check), name))


def int8_agreement(model: nn.Module, tokenizer, max_length: int, run_int8) -> tuple[float, float]:
    """Mean and min cosine, row by row, of the fp32 model's first output and `run_int8(batch)`'s on 32 real SST-2
    sentences after the ones quantize() calibrates on by default."""
    check = real_batch(tokenizer, model, 32, max_length, skip=INT8_CHECK_SKIP)
    name = OUTPUT_NAMES[type(model).__name__][0]
    with torch.no_grad():
        expected, got = getattr(model(**check), name), run_int8(check)
    cosine = F.cosine_similarity(expected.flatten(1).float(), got.flatten(1).float(), dim=-1)
    return cosine.mean().item(), cosine.min().item()


# ---- int8 in onnxruntime: briskbert.quantize's recipe, carried into the graph


class SplitLinear(nn.Module):
    """An `Int8Linear`'s computation written in fp32 ops that ONNX has, for onnxruntime to quantize:
    y = (x * input_scale) @ main_weight + x[:, outliers] @ outlier_weight + b.

    `main_weight` [in, out] is the int8 weight dequantized (smoothed, outlier rows zero), so onnxruntime's symmetric
    per-column int8 of it gives back the same int8 values and scales; the outlier channels' small matmul stays fp32.
    Both are plain MatMuls (not Linear, which exports as Gemm: onnxruntime's dynamic quantizer leaves Gemm fp32)."""

    def __init__(self, int8):
        super().__init__()
        self.register_buffer("main_weight", (int8.weight_int8.float() * int8.weight_scale[:, None]).t().contiguous())
        self.register_buffer("bias", int8.bias.clone())
        self.register_buffer("input_scale", None if int8.input_scale is None else int8.input_scale.clone())
        self.register_buffer("outlier_index", None if int8.outlier_index is None else int8.outlier_index.clone())
        self.register_buffer("outlier_weight",
                             None if int8.outlier_weight is None else int8.outlier_weight.t().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x if self.input_scale is None else x * self.input_scale) @ self.main_weight + self.bias
        if self.outlier_index is not None:
            y = y + x.index_select(-1, self.outlier_index) @ self.outlier_weight
        return y


def split_linears(int8_model: nn.Module) -> nn.Module:
    """A copy of a `quantize`d model with every Int8Linear as a SplitLinear: fp32 ops that export."""
    model = copy.deepcopy(int8_model)
    for name, module in list(model.named_modules()):
        if isinstance(module, Int8Linear):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, SplitLinear(module))
    return model.eval()


@contextlib.contextmanager
def onnxruntime_tools():
    """Import onnxruntime's Python tools (onnxruntime.transformers, onnxruntime.quantization) inside this. Their
    modules import their siblings as top-level modules, so onnxruntime/transformers must be on sys.path while they
    load; the package's __init__ appends it, but only on its first import. Left there, its benchmark.py, etc. would
    stand in for top-level modules of those names in the caller's process, so sys.path is restored afterwards."""
    import onnxruntime

    path_before = list(sys.path)
    sys.path.append(str(Path(onnxruntime.__file__).parent / "transformers"))
    try:
        yield
    finally:
        sys.path[:] = path_before


def quantize_onnx(fp32_path, output, weight_bits: int = 8) -> int:
    """onnxruntime's dynamic int8 (int8 weights per output column, uint8 activations per call) on the matmuls of the
    SplitLinears' main weights only: the outlier matmuls and the Linears the recipe keeps fp32 stay fp32. With
    `weight_bits` 7, onnxruntime's reduce_range: weights within +-64, the codes `quantize` gave them, so a pair of
    u8 x s8 products cannot saturate in the int16 kernels of a CPU without VNNI. The bits and the quantizing CPU's
    kind go into the graph's metadata. Returns how many matmuls became int8."""
    import onnx

    with onnxruntime_tools():
        from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    nodes = [node.name for node in graph.node if node.op_type == "MatMul"
             and any(name in initializers and name.endswith("main_weight") for name in node.input)]
    if not nodes:
        raise RuntimeError(f"{fp32_path} has no matmul on a SplitLinear weight; nothing to quantize.")
    # without DefaultTensorType the quantizer cannot type outputs that shape inference leaves open
    quantize_dynamic(str(fp32_path), str(output), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=weight_bits == 7, nodes_to_quantize=nodes,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    quantized = onnx.load(str(output))
    onnx.helper.set_model_props(quantized, {**{p.key: p.value for p in quantized.metadata_props},
                                            WEIGHT_BITS_KEY: str(weight_bits),
                                            QUANTIZED_ON_KEY: accumulation_name(int16_pairs())})
    onnx.save(quantized, str(output))
    return len(nodes)


def export_int8_graph(int8_model: nn.Module, example: dict, output) -> int:
    """Write a `quantize`d model as an int8 ONNX graph: its SplitLinear form exported, then quantized by
    onnxruntime on the main weights. Returns how many matmuls are int8."""
    with tempfile.TemporaryDirectory(prefix="briskbert-int8-onnx-") as temporary:
        fp32_path = Path(temporary) / "split.onnx"
        export_onnx(split_linears(int8_model), example, fp32_path)
        return quantize_onnx(fp32_path, output, getattr(int8_model.config, INT8_CONFIG_KEY).get("weight_bits", 8))


def export_int8_onnx(folder, output, method: str = "smooth-outliers", max_length: int = 128,
                     weight_bits: int | None = None) -> tuple[float, float]:
    """Quantize the BriskBERT in `folder` (briskbert.quantize, calibrated on real sentences), export that recipe as an
    int8 ONNX graph for onnxruntime, then run the graph (briskbert.OnnxEncoder) beside the fp32 model on real SST-2
    sentences it was not calibrated on; returns the mean and min cosine of their first outputs, row by row."""
    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    if type(model).__name__ == "BriskBertForMultipleChoice":
        raise SystemExit("export: --int8 ONNX takes [batch, seq] inputs (briskbert.OnnxEncoder); a multiple-choice "
                         "head's are [batch, choices, seq]. Export it with --format onnx (fp32).")
    tokenizer = load_tokenizer(folder)
    output.parent.mkdir(parents=True, exist_ok=True)
    export_int8_graph(quantize(model, method, tokenizer=tokenizer, weight_bits=weight_bits),
                      real_batch(tokenizer, model, 4, max_length), output)
    encoder = OnnxEncoder(output)
    return int8_agreement(model, tokenizer, max_length,
                          lambda check: encoder(check["input_ids"], check["attention_mask"], check["token_type_ids"]))
