"""What CPU users run instead of PyTorch eager, as benchmark contenders beside BriskBERT (inference, CPU, fp32 rows).

Each is HF BERT at the preset's shapes (the `bert` contender's weights), or BriskBERT's own int8:
- `bert-int8`: transformers' BertModel with torch.ao dynamic int8 Linears;
- `ort-bert`, `ort-bert-int8`: BertModel exported to ONNX (torch.onnx's TorchScript exporter, opset 17), fused by
  onnxruntime's transformer optimizer (Attention, SkipLayerNormalization, BiasGelu), and that graph through
  onnxruntime's `quantize_dynamic` (per-tensor int8 weights, the tool's default);
- `ct2-bert`, `ct2-bert-int8`: BertModel converted by CTranslate2's TransformersConverter, which removes padding
  and has its own int8 kernels;
- `briskbert-int8`: BriskBERT (sdpa) through `briskbert.quantize` (its default method), calibrated on the batches;
- `briskbert-ort`, `briskbert-ort-int8`: BriskBERT exported as briskbert-export does (`--format onnx`, and with
  `--int8`: briskbert.quantize's recipe in onnxruntime's int8 matmuls, calibrated on the batches), run by
  `briskbert.OnnxEncoder` (micro-batches cut by length where padding plus calls cost least).
A contender whose package is missing is skipped with the reason (`skip_reason`). onnxruntime sessions run with
the torch thread count and spinning off, so its idle threads do not slow the contender timed after it.
"""

import copy
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel

from ...modeling import BriskBertModel
from ..conversion.export import INPUT_NAMES, export_onnx
from ..inference.int8_export import export_int8_graph, onnxruntime_tools
from ..inference.onnx_encoder import OnnxEncoder
from ..inference.quantize import quantize

ANCHORS = ("bert-int8", "ort-bert", "ort-bert-int8", "ct2-bert", "ct2-bert-int8", "briskbert-int8", "briskbert-ort",
           "briskbert-ort-int8")
PACKAGES = {"ort-bert": "onnxruntime", "ort-bert-int8": "onnxruntime", "ct2-bert": "ctranslate2",
            "ct2-bert-int8": "ctranslate2", "briskbert-ort": "onnxruntime", "briskbert-ort-int8": "onnxruntime"}
INSTALL = {"onnxruntime": "pip install 'briskbert[export]'", "ctranslate2": "pip install ctranslate2"}


def skip_reason(name: str, device: str) -> str | None:
    if device != "cpu":
        return f"{name} is a CPU anchor (--device cpu)"
    package = PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        return f"{name} needs {package} ({INSTALL[package]})"
    return None


class AnchorRunner:
    """The benchmark's Runner interface (`run(mode, dtype, batch)`, `sync()`, `model` for its config) for an
    inference-only contender; `glu` says which FLOP count is its work."""

    glu = False

    def __init__(self, name: str, model: nn.Module, forward):
        self.name, self.model, self.forward = name, model, forward

    def run(self, mode, dtype, batch):
        if mode != "inference" or dtype != "fp32":
            raise ValueError(f"{self.name} runs fp32 inference only")
        self.forward(batch)

    def sync(self):
        pass


def runs_in(name: str, mode: str, dtype: str) -> bool:
    return mode == "inference" and dtype == "fp32"


def bert_encoder(bert_mlm) -> BertModel:
    """The `bert` contender's encoder, alone (what the anchors run: no MLM head at inference)."""
    return bert_mlm.bert.eval()


def build_anchor(name: str, bert_mlm, briskbert_mlm, batches: list[dict], tokenizer, threads: int) -> AnchorRunner:
    bert = bert_encoder(bert_mlm)
    if name == "bert-int8":
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's migration notice
            model = quantize_dynamic(bert, {nn.Linear}, dtype=torch.qint8)

        def forward(batch):
            with torch.inference_mode():
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"])
        return AnchorRunner(name, bert, forward)
    if name == "briskbert-int8":
        inputs = [{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for b in batches]
        model = quantize(briskbert_mlm, batches=inputs)
        runner = AnchorRunner(name, model, lambda batch: _briskbert_forward(model, batch))
        runner.glu = model.config.mlp_type == "glu"
        return runner
    if name in ("briskbert-ort", "briskbert-ort-int8"):
        # the MLM model's encoder, as the base model a user exports (with its pooled output)
        encoder_model = BriskBertModel(briskbert_mlm.config).eval()
        encoder_model.load_state_dict(briskbert_mlm.model.state_dict())
        example = {k: batches[0][k] for k in INPUT_NAMES}
        with tempfile.TemporaryDirectory(prefix="briskbert-ort-anchor-") as folder:  # the session keeps the graph
            path = Path(folder) / "briskbert.onnx"
            if name.endswith("int8"):  # briskbert-export --format onnx --int8, calibrated as briskbert-int8 is
                inputs = [{k: b[k] for k in INPUT_NAMES} for b in batches]
                export_int8_graph(quantize(encoder_model, batches=inputs), example, path)
            else:
                export_onnx(encoder_model, example, path)
            encoder = OnnxEncoder(path, intra_op_num_threads=threads)
        runner = AnchorRunner(name, encoder_model, lambda batch: encoder(batch["input_ids"], batch["attention_mask"],
                                                                          batch["token_type_ids"]))
        runner.glu = encoder_model.config.mlp_type == "glu"
        return runner
    if name.startswith("ort-"):
        session = ort_bert_session(bert, int8=name.endswith("int8"), threads=threads)

        def forward(batch):
            session.run(None, {k: batch[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids")})
        return AnchorRunner(name, bert, forward)
    if name.startswith("ct2-"):
        encoder = ct2_bert_encoder(bert, tokenizer, int8=name.endswith("int8"), threads=threads)

        def forward(batch):
            ids = [row[mask.bool()].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"])]
            types = [row[mask.bool()].tolist() for row, mask in zip(batch["token_type_ids"], batch["attention_mask"])]
            np.asarray(encoder.forward_batch(ids, token_type_ids=types).last_hidden_state)
        return AnchorRunner(name, bert, forward)
    raise ValueError(f"unknown anchor {name!r}; the anchors are {ANCHORS}")


def _briskbert_forward(model, batch):
    with torch.inference_mode():
        model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"])


class KeywordBert(nn.Module):
    """BertModel called positionally in the ONNX input order (its own positional order differs)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state


def ort_bert_session(bert: BertModel, int8: bool, threads: int):
    import onnxruntime

    with onnxruntime_tools():
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model

    example = torch.ones(2, 16, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    bert = copy.deepcopy(bert)
    # onnxruntime's optimizer fuses Attention from the eager graph's pattern, not from SDPA's
    bert.set_attn_implementation("eager")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory(prefix="briskbert-ort-anchor-") as temporary:  # the session keeps the graph
        folder = Path(temporary)
        raw, optimized = folder / "bert.onnx", folder / "bert-optimized.onnx"
        torch.onnx.export(KeywordBert(bert), (example, example, torch.zeros_like(example)), str(raw), dynamo=False,
                          opset_version=17, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={**{n: axes for n in names}, "last_hidden_state": axes})
        config = bert.config
        fused = optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
        counts = fused.get_fused_operator_statistics()
        print(f"  ort-bert: fused {', '.join(f'{op} x{n}' for op, n in counts.items() if n)}")
        fused.save_model_to_file(str(optimized))
        path = optimized
        if int8:
            import onnx

            path = folder / "bert-int8.onnx"
            # without DefaultTensorType the quantizer cannot type the fused graph's outputs
            quantize_dynamic(str(optimized), str(path), weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ct2_bert_encoder(bert: BertModel, tokenizer, int8: bool, threads: int):
    import ctranslate2

    saved = BertModel(BertConfig.from_dict(bert.config.to_dict()))
    missing, _ = saved.load_state_dict(bert.state_dict(), strict=False)
    assert all(key.startswith("pooler.") for key in missing), missing  # the MLM model's encoder has no pooler
    saved.config.position_embedding_type = "absolute"  # ctranslate2 4.8 still reads this field transformers 5 dropped
    saved.config.architectures = ["BertModel"]
    with tempfile.TemporaryDirectory(prefix="briskbert-ct2-anchor-") as temporary:  # the encoder loads it whole
        folder = Path(temporary)
        source, converted = folder / "bert", folder / "ct2"
        saved.save_pretrained(source)
        tokenizer.save_pretrained(source)
        ctranslate2.converters.TransformersConverter(str(source)).convert(str(converted),
                                                                          quantization="int8" if int8 else None)
        return ctranslate2.Encoder(str(converted), device="cpu", compute_type="int8" if int8 else "float32",
                                   intra_threads=threads)
