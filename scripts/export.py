"""Export a saved BriskBERT for serving: ONNX (onnxruntime) or a `torch.export` program.

    briskbert-export --model my-briskbert --format onnx --output my-briskbert.onnx
    briskbert-export --model my-briskbert --format torch-export --output my-briskbert.pt2
    briskbert-export --model my-briskbert --int8 --output my-briskbert-int8/
    briskbert-export --model my-briskbert --format onnx --int8 --output my-briskbert-int8.onnx

`--int8` alone writes an int8 BriskBERT folder for CPU inference (briskbert.quantize, calibrated on real sentences;
load it with `briskbert.load_quantized`). With `--format onnx` it writes the same recipe as an int8 ONNX graph for
onnxruntime (run it with `briskbert.OnnxEncoder`). Either way it prints how close the int8 outputs stay to the fp32
model's on sentences it was not calibrated on. The weights take the bits this CPU's int8 matmul holds: 8 with VNNI, 7
without (where products add in int16 pairs); `--int8-weight-bits 7` writes, on any CPU, a model that runs accurately
on both kinds (docs/int8.md).

The graph takes padded `input_ids`, `attention_mask`, `token_type_ids` (int64) of any batch size and sequence
length ([batch, choices, seq] for multiple choice) and returns the model's outputs (`last_hidden_state` +
`pooler_output` for the encoder, `logits` for most heads). It runs the padded rows with one additive attention mask
(ALiBi + padding), which exports, instead of the model's unpadding, which does not; outputs equal the PyTorch
model's, padded rows included. After writing, the exported graph and the PyTorch model run on real SST-2 sentences
of mixed length and the max difference is printed (trainers/conversion/export.py; int8:
trainers/inference/int8_export.py).
"""

import argparse
from pathlib import Path

from briskbert.trainers.config import warn_renamed
from briskbert.trainers.conversion.export import FORMATS, export_model
from briskbert.trainers.inference.int8_export import export_int8, export_int8_onnx
from briskbert.trainers.inference.quantize import METHODS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="saved BriskBERT folder (with its tokenizer)")
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--int8", action="store_true",
                        help="int8 for CPU inference: a model folder, or with --format onnx an int8 ONNX graph")
    parser.add_argument("--int8-method", default="smooth-outliers", choices=list(METHODS),
                        help="how --int8 quantizes (docs/int8.md compares them)")
    parser.add_argument("--int8-weight-bits", type=int, choices=[8, 7], default=None,
                        help="weight bits for --int8 (default: 8 on a CPU with VNNI, 7 without; 7 runs on both)")
    parser.add_argument("--output", required=True, type=Path, help="file to write (.onnx or .pt2; a folder for --int8)")
    parser.add_argument("--max-seq-length", type=int, default=128, help="truncation of the check sentences")
    parser.add_argument("--max-length", "--max_length", dest="old_max_length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.old_max_length is not None:
        warn_renamed("--max-length", "--max-seq-length")
        args.max_seq_length = args.old_max_length
    if args.format is None and not args.int8:
        parser.error("give --format (onnx or torch-export), --int8 (an int8 folder), or both (an int8 ONNX graph)")
    if args.int8 and args.format == "torch-export":
        parser.error("--int8 exports to --format onnx (onnxruntime's int8 kernels) or, without --format, to an int8 "
                     "model folder; a torch-export program of the int8 model is not supported")
    if args.int8 and args.format == "onnx":
        mean, worst = export_int8_onnx(args.model, args.output, args.int8_method, args.max_seq_length,
                                       args.int8_weight_bits)
        print(f"wrote {args.output} (int8 ONNX, {args.int8_method}; run it with briskbert.OnnxEncoder); on 32 real "
              f"SST-2 sentences outside its calibration its first output's cosine to fp32 is {mean:.5f} mean, "
              f"{worst:.5f} min")
        return
    if args.int8:
        mean, worst = export_int8(args.model, args.output, args.int8_method, args.max_seq_length, args.int8_weight_bits)
        print(f"wrote {args.output} (int8, {args.int8_method}; load with briskbert.load_quantized); on 32 real SST-2 "
              f"sentences outside its calibration its first output's cosine to fp32 is {mean:.5f} mean, {worst:.5f} min")
        return
    names, difference, shape = export_model(args.model, args.format, args.output, args.max_seq_length)
    print(f"wrote {args.output} ({args.format} -> {', '.join(names)}); on {shape[0]} real SST-2 rows padded to "
          f"{shape[-1]} the exported graph and the PyTorch model differ by at most {difference:.2e}")


if __name__ == "__main__":
    main()
