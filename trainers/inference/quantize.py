"""int8 BriskBERT for CPU inference that keeps the fp32 model's accuracy, on the unpadded path.

    int8 = briskbert.quantize(model)                  # calibrates on real sentences, returns the int8 model
    briskbert.save_quantized(int8, "out/")            # a folder: config (with the int8 recipe), int8 weights
    int8 = briskbert.load_quantized("out/")

Every Linear of the encoder layers becomes an `Int8Linear`: int8 weights (one scale per output row), activations
quantized per call by fbgemm's dynamic kernels. Plain dynamic int8 loses too much on real BERTs (docs/int8.md): a
few input channels carry activations an order of magnitude above the others, so one per-tensor scale leaves the rest
a handful of levels. Two measured remedies (docs/int8.md has the table) fix it:
- SmoothQuant: divide each input channel by s_j = amax_j^alpha / wmax_j^(1-alpha) and multiply the weight's column
  by it (the product is unchanged), moving the outliers' range into the weights, which int8 holds per row;
- outlier channels: the ~2% of input channels with the largest calibrated range stay fp32 (LLM.int8()'s
  decomposition, with channels chosen once at calibration, not per call).
The FFN output projection is not smoothed: its input (GELU output) has token outliers that smoothing moves into
every other token's weight range, which measured worse than keeping its top channels in fp32.

The heads (classifier, MLM decoder, QA/NER outputs) stay fp32: they are a small share of the FLOPs and quantizing
them is where a task's score moves.

How many bits the weights get depends on the CPU, chosen at quantize time and recorded in the saved config: where
the int8 matmul adds u8 x s8 products in int16 pairs (AVX2, or AVX-512 without VNNI: `int16_pairs()`), 8-bit weights
times 8-bit activations can pass 32,767 and saturate, so weights take 7 bits (|w| <= 64, as onnxruntime's
reduce_range) and activations keep all 8; with VNNI the products add in int32 and both take 8 bits.
"""

import functools
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ... import modeling
from ..resources import read_sentences

INT8_CONFIG_KEY = "briskbert_int8"  # config.json entry of a saved int8 model: the recipe it was quantized with


ROLES = ("attention.Wqkv", "attention.Wo", "mlp.Wi", "mlp.Wo")  # each encoder Linear's role, by its name's end
# the largest int8 weight code by weight bits; 7 bits as onnxruntime's reduce_range: |w0| + |w1| <= 128, so a pair of
# products with 8-bit activations (u8 <= 255) stays within int16 (255 * 128 = 32,640)
WEIGHT_LEVELS = {8: 127, 7: 64}
PAIR_SAFE_LEVEL = WEIGHT_LEVELS[7]


@dataclass(frozen=True)
class Int8Recipe:
    """How `quantize` treats each Linear, by role (ROLES). `method` names the preset; the fields say what it means:
    - smooth_alpha: SmoothQuant's migration strength, for the roles in `smooth` (None: off);
    - outlier_fraction: share of input channels kept fp32 (by calibrated range), for the roles in `outliers`;
    - per_channel: one weight scale per output row (else one per tensor);
    - fp32: roles left unquantized."""

    method: str = "smooth-outliers"
    smooth_alpha: float | None = 0.5
    smooth: tuple[str, ...] = ("attention.Wqkv", "attention.Wo", "mlp.Wi")
    outlier_fraction: float = 0.02
    outliers: tuple[str, ...] = ROLES
    per_channel: bool = True
    fp32: tuple[str, ...] = ()


METHODS = {
    "smooth-outliers": Int8Recipe(),
    "dynamic": Int8Recipe("dynamic", smooth_alpha=None, outlier_fraction=0.0, per_channel=False),
    "dynamic-per-channel": Int8Recipe("dynamic-per-channel", smooth_alpha=None, outlier_fraction=0.0),
    "smoothquant": Int8Recipe("smoothquant", outlier_fraction=0.0),
    "smoothquant-fp32-ffn-output": Int8Recipe("smoothquant-fp32-ffn-output", outlier_fraction=0.0,
                                              fp32=("mlp.Wo",)),
}


class Int8Linear(nn.Module):
    """y = int8(x * input_scale) @ int8(W * s)^T + x[:, outliers] @ W[:, outliers]^T + b.

    `input_scale` is 1/s with zeros at the outlier channels, so one multiply both smooths the input and drops the
    channels the small fp32 matmul handles. The int8 weight and its scales are plain buffers (they save to
    safetensors); fbgemm's packed form is built from them on first use."""

    def __init__(self, in_features: int, out_features: int, num_outliers: int = 0, smoothed: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features))
        self.register_buffer("input_scale", torch.ones(in_features) if smoothed or num_outliers else None)
        self.register_buffer("outlier_index", torch.zeros(num_outliers, dtype=torch.long) if num_outliers else None)
        self.register_buffer("outlier_weight", torch.zeros(out_features, num_outliers) if num_outliers else None)
        self._packed = {}  # fbgemm's packed weights, by output rows
        self._reduce_range = None  # whether activations must take 7 bits here (activation_reduce_range)

    @classmethod
    def from_linear(cls, linear: nn.Linear, smoothing: torch.Tensor | None, outliers: torch.Tensor | None,
                    per_channel: bool, weight_bits: int = 8) -> "Int8Linear":
        weight = linear.weight.detach().float()
        module = cls(linear.in_features, linear.out_features, 0 if outliers is None else len(outliers),
                     smoothed=smoothing is not None)
        input_scale = torch.ones(linear.in_features)
        quantized = weight.clone()
        if smoothing is not None:
            quantized *= smoothing
            input_scale = 1.0 / smoothing
        if outliers is not None:
            module.outlier_index.copy_(outliers)
            module.outlier_weight.copy_(weight[:, outliers])
            quantized[:, outliers] = 0.0
            input_scale[outliers] = 0.0
        if module.input_scale is not None:
            module.input_scale.copy_(input_scale)
        row_range = quantized.abs().amax(dim=1) if per_channel else quantized.abs().amax().expand(linear.out_features)
        levels = WEIGHT_LEVELS[weight_bits]
        scale = (row_range / levels).clamp(min=1e-12)
        module.weight_int8.copy_(torch.round(quantized / scale[:, None]).clamp(-levels, levels).to(torch.int8))
        module.weight_scale.copy_(scale)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    def _apply(self, fn, recurse=True):
        self._packed, self._reduce_range = {}, None  # moved or cast buffers: pack again from them
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._packed, self._reduce_range = {}, None
        super()._load_from_state_dict(*args, **kwargs)

    def activation_reduce_range(self) -> bool:
        """7-bit activations (fbgemm's reduce_range) only where products add in int16 pairs and these weights reach
        past PAIR_SAFE_LEVEL (8-bit weights, quantized for a VNNI CPU): the one way they cannot saturate there."""
        if self._reduce_range is None:
            self._reduce_range = int16_pairs() and int(self.weight_int8.abs().max()) > PAIR_SAFE_LEVEL
        return self._reduce_range

    def packed(self, rows: slice = slice(None)):
        """fbgemm's packed int8 weight (and bias) of the given output rows, built on first use."""
        key = (rows.start, rows.stop)
        if key not in self._packed:
            scale = self.weight_scale[rows]
            zero_points = torch.zeros(len(scale), dtype=torch.long)
            with warnings.catch_warnings():
                # torch 2.13 marks quantized tensors deprecated (their kernels are moving to torchao); fbgemm's
                # prepack still takes only them, and this is the one place one is built
                warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
                weight = torch.quantize_per_channel(
                    self.weight_int8[rows].float() * scale[:, None], scale.double(), zero_points, axis=0,
                    dtype=torch.qint8,
                )
            self._packed[key] = torch.ops.quantized.linear_prepack(weight, self.bias[rows].float())
        return self._packed[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled, outliers = self._inputs(x)
        return self._matmul(scaled, outliers, slice(None)).reshape(*x.shape[:-1], self.out_features)

    def forward_halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward(x).chunk(2, -1), the GLU's gate and value, as two half-width int8 matmuls that each write a
        contiguous output. fbgemm writes two [tokens, out/2] outputs faster than one [tokens, out] (docs/speed.md,
        "Tunings measured behind the code")."""
        scaled, outliers = self._inputs(x)
        half = self.out_features // 2
        return tuple(self._matmul(scaled, outliers, rows).reshape(*x.shape[:-1], half)
                     for rows in (slice(0, half), slice(half, self.out_features)))

    def _inputs(self, x: torch.Tensor):
        """The input as [tokens, in], smoothed and zero at the outlier channels; and the outlier channels alone."""
        if x.device.type != "cpu":
            raise RuntimeError("Int8Linear runs on the CPU (fbgemm's int8 kernels); keep the int8 model on the CPU.")
        flat = x.reshape(-1, self.in_features).float()
        scaled = flat if self.input_scale is None else flat * self.input_scale
        # index_select rather than flat[:, index]: the faster gather, measured on the whole int8 model
        outliers = None if self.outlier_index is None else flat.index_select(1, self.outlier_index)
        return scaled, outliers

    def _matmul(self, scaled, outliers, rows: slice) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(scaled, self.packed(rows), reduce_range=self.activation_reduce_range())
        if outliers is not None:  # in place rather than a fresh sum: one [tokens, out] buffer less per call
            y.addmm_(outliers, self.outlier_weight[rows].t())
        return y

    def extra_repr(self) -> str:
        outliers = 0 if self.outlier_index is None else len(self.outlier_index)
        return f"in={self.in_features}, out={self.out_features}, fp32 outlier channels={outliers}"


# FBGEMM_ENABLE_INSTRUCTIONS values that make fbgemm run its int16-pair kernels whatever the CPU has
FBGEMM_INT16_PAIR_SETS = ("AVX2", "AVX512", "AVX512_256")


def has_vnni() -> bool:
    """Whether this CPU adds int8 products in int32 (AVX-512 VNNI), as onnxruntime's and fbgemm's kernels use it."""
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    return check is not None and check()


@functools.cache
def int16_pairs() -> bool:
    """Whether fbgemm's int8 matmul adds products in int16 pairs here (AVX2, or AVX-512 without VNNI), where 8-bit
    weights times 8-bit activations can saturate. fbgemm takes its kernel set from the CPU, or from
    FBGEMM_ENABLE_INSTRUCTIONS: AVX2 there runs the int16-pair kernels on a VNNI CPU too, which is how one machine
    checks the other's path (tests/test_quantize.py)."""
    if os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "").upper() in FBGEMM_INT16_PAIR_SETS:
        return True
    return not has_vnni()


def native_weight_bits() -> int:
    """The weight bits `quantize` gives by default here: what this CPU's int8 matmul holds without saturating."""
    return 7 if int16_pairs() else 8


def accumulation_name(pairs: bool) -> str:
    return "int16 pairs (AVX2, or AVX-512 without VNNI)" if pairs else "int32 (VNNI)"


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The Linears of the encoder layers (attention Wqkv/Wo, feed-forward Wi/Wo), by qualified name."""
    encoder = getattr(model, "model", model)
    layers = getattr(encoder, "layers", None)
    if layers is None or not hasattr(model, "config") or model.config.model_type != "briskbert":
        raise TypeError(f"quantize takes a BriskBERT model (any head), got {type(model).__name__}; convert a BERT "
                        f"first (briskbert-convert --from bert ...).")
    prefix = "model." if encoder is not model else ""
    return {f"{prefix}layers.{name}": module for name, module in layers.named_modules()
            if type(module) is nn.Linear and name.endswith(ROLES)}  # the small attention gate stays fp32


def calibration_batches(model, tokenizer=None, texts=None, num_texts: int = 256, batch_size: int = 32,
                        max_length: int = 128) -> list[dict]:
    """Tokenized batches of real text to measure activation ranges on: `texts`, or the package's bundled SST-2
    sentences. The tokenizer defaults to the one saved beside the model."""
    if tokenizer is None:
        from transformers import AutoTokenizer

        source = getattr(model.config, "_name_or_path", "")
        if not source or not Path(source).exists():
            raise ValueError("quantize needs a tokenizer to calibrate with: pass tokenizer=... (or calibration "
                             "batches), or load the model from a folder that holds its tokenizer.")
        tokenizer = AutoTokenizer.from_pretrained(source)
    if texts is None:
        texts = read_sentences(num_texts)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("quantize got no calibration text: pass a list of non-empty strings.")
    return [tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt") for i in range(0, len(texts), batch_size)]


@torch.inference_mode()
def input_ranges(model, linears: dict[str, nn.Linear], batches: list[dict]) -> dict[str, torch.Tensor]:
    """Per input channel, the largest |activation| each Linear sees on the calibration batches (real tokens only:
    the unpadded path never shows a Linear a padding row)."""
    ranges = {}

    def record(name):
        def hook(module, inputs, output):
            seen = inputs[0].detach().reshape(-1, module.in_features).abs().amax(dim=0).float()
            ranges[name] = torch.maximum(ranges[name], seen) if name in ranges else seen
        return hook

    handles = [linear.register_forward_hook(record(name)) for name, linear in linears.items()]
    encoder = getattr(model, "model", model)  # the layers are all calibration needs, whatever the head's input shape
    was_training = encoder.training
    encoder.eval()
    try:
        for batch in batches:
            encoder(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    finally:
        for handle in handles:
            handle.remove()
        encoder.train(was_training)
    return ranges


def smoothing_scales(activation_range: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    weight_range = weight.detach().abs().amax(dim=0).float().clamp(min=1e-5)
    return (activation_range.clamp(min=1e-5) ** alpha / weight_range ** (1 - alpha)).clamp(min=1e-5)


def quantize(model, method: str | Int8Recipe = "smooth-outliers", tokenizer=None, texts=None,
             batches: list[dict] | None = None, inplace: bool = False, weight_bits: int | None = None):
    """An int8 copy of a BriskBERT model (any head) for CPU inference. `method` is a name in METHODS (default:
    the measured most accurate, "smooth-outliers") or an Int8Recipe. Calibration runs the fp32 model on `batches`,
    or on `texts` tokenized with `tokenizer`, or on 256 bundled SST-2 sentences. `weight_bits` defaults to what this
    CPU's int8 matmul holds without saturating: 8 with VNNI, 7 where products add in int16 pairs (7 bits run
    accurately on both kinds, for a model quantized here and served on another CPU)."""
    import copy

    if weight_bits is None:
        weight_bits = native_weight_bits()
    if weight_bits not in WEIGHT_LEVELS:
        raise ValueError(f"weight_bits must be one of {sorted(WEIGHT_LEVELS)}, got {weight_bits!r}.")

    recipe = METHODS[method] if isinstance(method, str) and method in METHODS else method
    if not isinstance(recipe, Int8Recipe):
        raise ValueError(f"unknown int8 method {method!r}: choose one of {', '.join(METHODS)}")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 BriskBERT runs on the CPU: move the model there first (model.cpu()).")
    linears = encoder_linears(model)
    needs_ranges = (recipe.smooth_alpha is not None and recipe.smooth) or (recipe.outlier_fraction and recipe.outliers)
    if needs_ranges and batches is None:
        batches = calibration_batches(model, tokenizer, texts)
    ranges = input_ranges(model, linears, batches) if needs_ranges else {}
    target = model if inplace else copy.deepcopy(model)
    for name in linears:
        linear = target.get_submodule(name)
        role = next(role for role in ROLES if name.endswith(role))
        if role in recipe.fp32:
            continue
        smoothing = outliers = None
        activation_range = ranges.get(name)
        if recipe.smooth_alpha is not None and role in recipe.smooth:
            smoothing = smoothing_scales(activation_range, linear.weight, recipe.smooth_alpha)
            activation_range = activation_range / smoothing
        num_outliers = round(recipe.outlier_fraction * linear.in_features) if role in recipe.outliers else 0
        if num_outliers:
            outliers = activation_range.topk(num_outliers).indices.sort().values
        parent, _, leaf = name.rpartition(".")
        setattr(target.get_submodule(parent), leaf, Int8Linear.from_linear(linear, smoothing, outliers,
                                                                           recipe.per_channel, weight_bits))
    target.eval()
    setattr(target.config, INT8_CONFIG_KEY, {**asdict(recipe), "weight_bits": weight_bits,
                                             "quantized_on": accumulation_name(int16_pairs()),
                                             "layout": layout_of(target)})
    return target


def cpu_mismatch(weight_bits: int, pairs: bool, what: str, fix: str) -> str | None:
    """The warning for 8-bit int8 weights about to run where products add in int16 pairs, or None."""
    if weight_bits <= 7 or not pairs:
        return None
    return (f"{what} has 8-bit int8 weights, quantized for a CPU that adds int8 products in int32 (VNNI); this CPU "
            f"adds them in {accumulation_name(True)}, where 8-bit weights lose accuracy (docs/int8.md). {fix}")


def layout_of(model) -> dict[str, int]:
    """Each Int8Linear's number of fp32 outlier channels (-1: no input scale), enough to rebuild the modules."""
    return {name: (-1 if module.input_scale is None else
                   0 if module.outlier_index is None else len(module.outlier_index))
            for name, module in model.named_modules() if isinstance(module, Int8Linear)}


def save_quantized(model, folder: str | Path, tokenizer=None):
    """Write an int8 model as a folder: config.json (with the int8 recipe and layout), model.safetensors (int8
    weights and scales), the model code and, if given, the tokenizer. Load it with `load_quantized`."""
    if not getattr(model.config, INT8_CONFIG_KEY, None):
        raise ValueError("save_quantized takes the model quantize() returned; save an fp32 model with "
                         "save_pretrained.")
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_quantized(folder: str | Path):
    """The int8 model `save_quantized` wrote, ready for CPU inference."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    recipe = getattr(config, INT8_CONFIG_KEY, None)
    if not recipe:
        raise ValueError(f"{folder} holds no int8 BriskBERT (no {INT8_CONFIG_KEY} in its config.json): load it "
                         f"with from_pretrained, then briskbert.quantize(model).")
    mismatch = cpu_mismatch(recipe.get("weight_bits", 8), int16_pairs(), str(folder),
                            "It runs here with 7-bit activations to stay exact. For full accuracy, quantize the fp32 "
                            "model again on this CPU (briskbert.quantize, or briskbert-export --int8), or on any CPU "
                            "with 7-bit weights, which run accurately on both kinds (weight_bits=7, "
                            "--int8-weight-bits 7).")
    if mismatch:
        warnings.warn(mismatch, stacklevel=2)
    architecture = (config.architectures or ["BriskBertModel"])[0]
    model = getattr(modeling, architecture)(config)
    for name, num_outliers in recipe["layout"].items():
        linear = model.get_submodule(name)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent), leaf, Int8Linear(linear.in_features, linear.out_features,
                                                               max(num_outliers, 0), smoothed=num_outliers >= 0))
    from safetensors.torch import load_file

    state = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.endswith(tied_suffixes(model))]
    if missing or unexpected:
        raise ValueError(f"{folder} does not match its int8 layout: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}. Quantize the fp32 model again and save it with save_quantized.")
    model.tie_weights()
    return model.eval()


def tied_suffixes(model) -> tuple[str, ...]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return tuple(tied) if not isinstance(tied, dict) else tuple(tied.keys())
