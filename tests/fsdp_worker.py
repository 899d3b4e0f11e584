"""A pretraining run of BriskBERT sharded with FSDP2 (torch's `fully_shard`, one unit per BriskBertLayer and the rest at
the root, as hub_configs/accelerate/fsdp-8gpu.yaml wraps it), on gloo CPU processes, with a sharded distributed
checkpoint (torch.distributed.checkpoint). accelerate runs FSDP on GPUs only, so on CPU this is the path that proves
BriskBERT's model and the launcher's data, masks and loss normalisation under sharding; test_fsdp_on_cpu.py starts it.

    torchrun --nproc_per_node 2 tests/fsdp_worker.py --output DIR --steps 20 --save-at 10 [--resume-from CKPT]

One process runs the model unsharded: the reference. Writes <output>/losses.json (rank 0), <output>/step_<N>/ (the
distributed checkpoint: a .distcp file per process) and <output>/final/ (save_pretrained of the gathered weights).
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard
from transformers import AutoTokenizer

from briskbert import BriskBertConfig, BriskBertForMaskedLM
from briskbert.modeling.modeling_briskbert import BriskBertLayer
from briskbert.trainers.data.corpus import load_corpus, tokenize_and_pack
from briskbert.trainers.data.masking import MLMMasking
from briskbert.trainers.data.packing import collate_rows
from briskbert.trainers.data.sampling import GlobalOrderBatchSampler
from briskbert.trainers.pretraining.loop import mask_seeds, masked_lm_loss
from briskbert.trainers.training import savable_model

REPO = Path(__file__).resolve().parents[1]
GLOBAL_BATCH, SEQ, SEED = 16, 64, 17


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--save-at", type=int, default=10)
    parser.add_argument("--resume-from")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(REPO / "data" / "tokenizer")
    rows = tokenize_and_pack(load_corpus(str(REPO / "data" / "corpus" / "en" / "us_inaugural_addresses.txt")),
                             tokenizer, SEQ)
    masking = MLMMasking.from_tokenizer(tokenizer, SEQ)
    torch.manual_seed(SEED)
    model = BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer),
                                                             pad_token_id=tokenizer.pad_token_id,
                                                             hidden_dropout_prob=0.0))
    if world > 1:
        for module in model.modules():
            if isinstance(module, BriskBertLayer):
                fully_shard(module)
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, foreach=False)

    start = 0
    if args.resume_from:
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optimizer_state}
        dcp.load(state, checkpoint_id=args.resume_from)  # reshards onto this run's processes
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        start = json.loads((Path(args.resume_from) / "step.json").read_text())["step"]

    sampler = iter(GlobalOrderBatchSampler(len(rows), GLOBAL_BATCH // world, SEED, rank, world, start_step=start))
    losses = []
    for step in range(start, args.steps):
        batch = collate_rows([rows[i] for i in next(sampler)], tokenizer.pad_token_id)
        ids, labels = masking(batch["input_ids"], batch["attention_mask"], 0.3,
                              mask_seeds(SEED, step, rows=batch["row_id"]))
        masked = torch.tensor(float((labels != -100).sum()))
        if world > 1:
            dist.all_reduce(masked)
        # FSDP averages gradients over processes, so each divides by the global masked count / processes (as DDP)
        loss = masked_lm_loss(model, "briskbert", {**batch, "input_ids": ids}, labels, masked / world)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        summed = loss.detach() * masked / world
        if world > 1:
            dist.all_reduce(summed)
        losses.append(summed.item() / masked.item())
        if step + 1 == args.save_at:
            save(model, optimizer, output / f"step_{step + 1}", step + 1, rank)

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        sharded = type(model.model.layers[0].attention.Wqkv.weight).__name__ == "DTensor"
        (output / "losses.json").write_text(json.dumps({"start": start, "losses": losses, "sharded": sharded}))
        savable, weights = savable_model(model, weights)
        savable.save_pretrained(output / "final", state_dict=weights)
    dist.barrier()
    dist.destroy_process_group()


def save(model, optimizer, folder: Path, step: int, rank: int) -> None:
    """Every process writes its own shard into a temporary folder, renamed into place only when all are done."""
    partial = folder.with_name(f".partial-{folder.name}")
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
    dist.barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(partial))
    dist.barrier()
    if rank == 0:
        (partial / "step.json").write_text(json.dumps({"step": step, "processes": int(os.environ["WORLD_SIZE"])}))
        partial.rename(folder)
    dist.barrier()


if __name__ == "__main__":
    main()
