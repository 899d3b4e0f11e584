"""A BriskBERT model as one graph, for ONNX (`torch.onnx.export`, dynamo) and `torch.export`; what briskbert-export runs.

    names, difference, shape = export_model("my-briskbert", "onnx", "my-briskbert.onnx")
    mean, worst = export_int8_onnx("my-briskbert", "my-briskbert-int8.onnx")

The model exports itself: under `torch.export` it runs on the padded rows (`modeling/unpadding.py`'s `PaddedBatch`,
SDPA with one 4-D ALiBi + padding bias) instead of removing padding, whose shapes depend on the data. So
`torch.export.export(model, (input_ids, attention_mask))` works for every head and every exporter built on it (this
module, torch.onnx's dynamo path, ExecuTorch). What is left here is naming the inputs and outputs and freeing the
batch and sequence dimensions.
"""

import contextlib
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from briskbert import modeling
from briskbert.modeling import HEADS

from ..resources import read_sentences

# what each head returns, in order (the ONNX output names)
OUTPUT_NAMES = {head.name: head.outputs for head in HEADS}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
FORMATS = ("onnx", "torch-export")
INT8_CHECK_SKIP = 256  # the int8 check's sentences come after the 256 that quantize() calibrates on by default


class NamedOutputs(nn.Module):
    """`model` called with positional (input_ids, attention_mask, token_type_ids), returning the tensors named in
    `OUTPUT_NAMES` as a tuple: the flat signature an ONNX graph has."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.kind = type(model).__name__
        if self.kind not in OUTPUT_NAMES:
            raise ValueError(f"Cannot export {self.kind}: expected one of the BriskBERT classes {sorted(OUTPUT_NAMES)}.")
        self.model = model
        self.eval()  # the wrapper too, not only the model: exporters warn about (and trace) training mode

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES[self.kind]

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(out[name] for name in self.output_names)


def dynamic_shapes(kind: str) -> tuple[dict, ...]:
    """Batch and sequence length (and the number of choices) free in the exported graph, for each of INPUT_NAMES."""
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    if kind == "BriskBertForMultipleChoice":
        dims[2] = torch.export.Dim.DYNAMIC
    return tuple(dict(dims) for _ in INPUT_NAMES)


def export_program(model: nn.Module, example: dict) -> torch.export.ExportedProgram:
    wrapper = NamedOutputs(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    return torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(wrapper.kind))


def export_onnx(model: nn.Module, example: dict, path) -> tuple[str, ...]:
    """Write an ONNX file (dynamic batch and sequence length); returns its output names."""
    wrapper = NamedOutputs(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    torch.onnx.export(
        wrapper, args, str(path), input_names=list(INPUT_NAMES), output_names=list(wrapper.output_names),
        dynamic_shapes=dynamic_shapes(wrapper.kind), dynamo=True, external_data=False,
    )
    return wrapper.output_names


# ---- a saved folder in, an exported file out, checked against PyTorch


def export_model(folder, export_format: str, output, max_length: int = 128) -> tuple[tuple[str, ...], float, tuple]:
    """Export the BriskBERT in `folder` and run the exported graph beside the PyTorch model on real SST-2 sentences
    of mixed length (another batch size and length than the traced example); returns (output names, their max abs
    difference, the checked input shape)."""
    if export_format not in FORMATS:
        raise SystemExit(f"export: --format must be one of {FORMATS}, got {export_format!r}.")
    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    tokenizer = load_tokenizer(folder)
    example = real_batch(tokenizer, model, 4, max_length)  # traced once; the shapes stay free
    check = real_batch(tokenizer, model, 16, max_length)
    output.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "onnx":
        import onnxruntime

        names = export_onnx(model, example, output)
        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        inputs = {key: value.numpy() for key, value in check.items()}
        exported = [torch.from_numpy(np.asarray(x)) for x in session.run(list(names), inputs)]
    else:
        torch.export.save(export_program(model, example), output)
        names = OUTPUT_NAMES[type(model).__name__]
        with torch.no_grad():
            exported = list(torch.export.load(output).module()(*check.values()))
    with torch.no_grad():
        out = model(**check)
    expected = [getattr(out, name) for name in names]
    difference = max((a - e).abs().max().item() for a, e in zip(exported, expected))
    return names, difference, tuple(check["input_ids"].shape)


def load_briskbert(folder: Path) -> nn.Module:
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    if config.model_type != "briskbert":
        raise SystemExit(f"export: {folder} holds a {config.model_type!r} model; convert it first with briskbert-convert.")
    architecture = (config.architectures or ["BriskBertModel"])[0]
    if architecture not in OUTPUT_NAMES:
        raise SystemExit(f"export: {folder} names architecture {architecture!r}, which is not a BriskBERT class "
                         f"({', '.join(OUTPUT_NAMES)}).")
    return getattr(modeling, architecture).from_pretrained(folder, attn_implementation="sdpa").eval()


def load_tokenizer(folder: Path):
    """The folder's tokenizer; a folder saved without one is refused with the fix, not transformers' guess that a
    tokenizer library is missing."""
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    if not any((folder / name).is_file() for name in tokenizer_files):
        raise SystemExit(f"export: {folder} has no tokenizer (none of {', '.join(tokenizer_files)}); the check runs the "
                         f"exported graph on real sentences. Save the tokenizer the model was trained with into it: "
                         f"AutoTokenizer.from_pretrained(<its tokenizer>).save_pretrained({str(folder)!r}).")
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=True)


def real_batch(tokenizer, model, count: int, max_length: int, skip: int = 0) -> dict:
    """Real SST-2 sentences of mixed length (`count` of them after the first `skip`), padded; [batch, 2 choices, seq]
    for multiple choice."""
    sentences = read_sentences(skip + count)[skip:]
    batch = dict(tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    batch.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
    if type(model).__name__ == "BriskBertForMultipleChoice":
        batch = {k: v.view(count // 2, 2, -1) for k, v in batch.items()}
    return {name: batch[name] for name in INPUT_NAMES}


def export_int8(folder, output, method: str = "smooth-outliers", max_length: int = 128) -> tuple[float, float]:
    """Quantize the BriskBERT in `folder` (briskbert.quantize) and write the int8 folder (save_quantized), then run it
    beside the fp32 model on real SST-2 sentences it was not calibrated on; returns the mean and min cosine of their
    first outputs, row by row."""
    from ..inference.quantize import load_quantized, quantize, save_quantized

    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    tokenizer = load_tokenizer(folder)
    save_quantized(quantize(model, method, tokenizer=tokenizer), output, tokenizer=tokenizer)
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
    from ..inference.quantize import Int8Linear

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


def quantize_onnx(fp32_path, output) -> int:
    """onnxruntime's dynamic int8 (int8 weights per output column, uint8 activations per call) on the matmuls of the
    SplitLinears' main weights only: the outlier matmuls and the Linears the recipe keeps fp32 stay fp32. Returns
    how many matmuls became int8."""
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
                     nodes_to_quantize=nodes, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return len(nodes)


def export_int8_graph(int8_model: nn.Module, example: dict, output) -> int:
    """Write a `quantize`d model as an int8 ONNX graph: its SplitLinear form exported, then quantized by
    onnxruntime on the main weights. Returns how many matmuls are int8."""
    with tempfile.TemporaryDirectory(prefix="briskbert-int8-onnx-") as temporary:
        fp32_path = Path(temporary) / "split.onnx"
        export_onnx(split_linears(int8_model), example, fp32_path)
        return quantize_onnx(fp32_path, output)


def export_int8_onnx(folder, output, method: str = "smooth-outliers", max_length: int = 128) -> tuple[float, float]:
    """Quantize the BriskBERT in `folder` (briskbert.quantize, calibrated on real sentences), export that recipe as an
    int8 ONNX graph for onnxruntime, then run the graph (briskbert.OnnxEncoder) beside the fp32 model on real SST-2
    sentences it was not calibrated on; returns the mean and min cosine of their first outputs, row by row."""
    from ..inference.onnx_encoder import OnnxEncoder
    from ..inference.quantize import quantize

    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    if type(model).__name__ == "BriskBertForMultipleChoice":
        raise SystemExit("export: --int8 ONNX takes [batch, seq] inputs (briskbert.OnnxEncoder); a multiple-choice "
                         "head's are [batch, choices, seq]. Export it with --format onnx (fp32).")
    tokenizer = load_tokenizer(folder)
    output.parent.mkdir(parents=True, exist_ok=True)
    export_int8_graph(quantize(model, method, tokenizer=tokenizer), real_batch(tokenizer, model, 4, max_length), output)
    encoder = OnnxEncoder(output)
    return int8_agreement(model, tokenizer, max_length,
                          lambda check: encoder(check["input_ids"], check["attention_mask"], check["token_type_ids"]))
