"""The pretraining launcher past one process and through the faults of a long run, in fresh processes as a user
runs it: two machines on loopback and a resume on another number of processes reproduce the 1-process curve; a second
run on a folder refuses; kill -9 of one rank stops the other at once; a full disk mid-checkpoint and a damaged
checkpoint file stop with messages that name the folder, the file and the fix, and lose nothing."""

import json
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest
from launchers import free_port, launch_environment
from pretrain_runs import FAST, RECIPE, REPO, SCRIPT, losses, metrics, pretrain, pretrain_command

from briskbert.trainers.output_lock import OutputLock
from briskbert.trainers.pretraining.checkpointing import load_latest_checkpoint
from briskbert.trainers.pretraining.loop import PretrainConfig, TrainerState, accumulation_keeping_the_global_batch


def test_two_machines_on_loopback_equal_one_process(tmp_path, reference_run):
    """The shipped multi-node config, as two `accelerate launch` commands (machine rank 0 and 1, one process each)
    meeting at 127.0.0.1: together they run the single-process 16-row curve."""
    output = tmp_path / "two-machines"
    config = REPO / "hub_configs" / "accelerate" / "multi-node-ddp.yaml"
    port = str(free_port())
    machines = [subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_machines", "2",
         "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port",
         port, "--mixed_precision", "no", SCRIPT, "--config", RECIPE, "--output-dir", str(output), *FAST,
         "--max-steps", "3", "--micro-batch-size", "8", "--save-every", "100"],
        cwd=REPO, env=launch_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)]
    errors = [machine.communicate(timeout=600)[1] for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    assert json.loads((output / "summary.json").read_text())["num_processes"] == 2
    assert losses(output) == pytest.approx(losses(reference_run), rel=1e-4)


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
def test_a_run_resumed_on_another_number_of_processes_stays_on_the_curve(tmp_path, uninterrupted, first, then):
    """Global batch 16: 1 process x 8 rows x 2 accumulation steps, or 2 x 8 x 1. Interrupted after its step-3
    checkpoint (what kill -9 leaves), a run resumes on the other number of processes, keeps the global batch by
    changing accumulation, says so, and reads the rows and masks the uninterrupted 1-process run reads."""
    args = ["--max-steps", "6", "--micro-batch-size", "8", "--save-every", "3", "--eval-every", "3"]
    accumulation = {1: ["--gradient-accumulation-steps", "2"], 2: []}
    reference = uninterrupted(*args, *accumulation[1])

    interrupted = tmp_path / "interrupted"
    pretrain(interrupted, *args, *accumulation[first], processes=first)
    shutil.rmtree(interrupted / "checkpoints" / "step_00000006")
    shutil.rmtree(interrupted / "final")
    resumed = pretrain(interrupted, *args, *accumulation[first], "--resume", processes=then)
    assert (f"global batch kept at 16 rows: 8 rows x {then} processes x {2 // then} accumulation steps (the "
            f"checkpoint was written by {first} processes") in resumed.stdout + resumed.stderr
    assert [r["step"] for r in metrics(interrupted)] == list(range(1, 7))
    assert losses(interrupted) == pytest.approx(losses(reference), rel=1e-4)
    assert [r["eval_loss"] for r in metrics(interrupted) if "eval_loss" in r] == pytest.approx(
        [r["eval_loss"] for r in metrics(reference) if "eval_loss" in r], rel=1e-4)
    summary = json.loads((interrupted / "summary.json").read_text())
    assert (summary["num_processes"], summary["global_batch_size"]) == (then, 16)


def test_a_global_batch_that_does_not_split_on_the_new_processes_is_refused_naming_sizes_that_do():
    state = TrainerState(step=3, global_batch_size=16, num_processes=2)
    config = PretrainConfig(tokenizer="data/tokenizer", micro_batch_size=3)
    with pytest.raises(SystemExit, match=r"global batch of 16 rows cannot be split into micro-batches of 3 rows on 1 "
                                         r"processes: pass --micro-batch-size one of \[2, 4, 8, 16\]"):
        accumulation_keeping_the_global_batch(config, state, 1, print)
    said = []
    config = PretrainConfig(tokenizer="data/tokenizer", micro_batch_size=4)
    assert accumulation_keeping_the_global_batch(config, state, 1, said.append) == 4 and "1 -> 4" in said[0]


def test_a_second_run_on_the_same_folder_refuses_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    args = ["--max-steps", "5000", "--micro-batch-size", "4", "--save-every", "5", "--keep-checkpoints", "1"]
    output = tmp_path / "run"
    first = subprocess.Popen(pretrain_command(output, *args), cwd=REPO, env=launch_environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (output / "checkpoints" / "step_00000005").exists() and time.time() < deadline:
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.05)
        second = pretrain(output, *args, expect_rc=1)
        assert f"Another run is writing to {output} (process {first.pid} on " in second.stderr
        assert "choose another --output-dir" in second.stderr
        assert first.poll() is None, "the refused run stopped the first one"
    finally:
        first.kill()
        first.wait(timeout=60)
    # kill -9 dropped the lock with the process: the next run takes it with no clean-up
    OutputLock(output).acquire().release()


def test_kill_9_of_one_rank_stops_the_other_at_once_and_resume_stays_on_the_curve(tmp_path, uninterrupted):
    """kill -9 of rank 1: rank 0's next collective fails (gloo: connection reset by peer), the launcher stops it and
    exits non-zero within seconds (measured: 1 s), and --resume on 2 processes follows the 1-process curve."""
    args = ["--max-steps", "15", "--save-every", "5", "--eval-every", "5"]
    reference = uninterrupted(*args, "--micro-batch-size", "8")
    output = tmp_path / "killed"
    launch = subprocess.Popen(pretrain_command(output, *args, "--micro-batch-size", "4", processes=2), cwd=REPO,
                              env=launch_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (output / "checkpoints" / "step_00000005").exists() and time.time() < deadline:
        assert launch.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    ranks = {child.environ().get("RANK"): child for child in psutil.Process(launch.pid).children(recursive=True)
             if child.environ().get("RANK") is not None}
    killed_at = time.time()
    ranks["1"].kill()
    _, stderr = launch.communicate(timeout=120)
    assert launch.returncode != 0 and time.time() - killed_at < 60, stderr[-3000:]
    assert not (output / "final").exists(), "the run finished before rank 1 was killed"

    pretrain(output, *args, "--micro-batch-size", "4", "--resume", processes=2)
    assert [r["step"] for r in metrics(output)] == list(range(1, 16))
    assert losses(output) == pytest.approx(losses(reference), rel=1e-4)


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=40m tmpfs "$SMALL"        # room for one checkpoint of BriskBERT-tiny (24 MB), not two
"$@" --output-dir "$SMALL/run" > "$LOGS/full.out" 2> "$LOGS/full.err"; echo $? > "$LOGS/full.rc"
ls "$SMALL/run/checkpoints" -a > "$LOGS/left.txt"
mount -o remount,size=400m "$SMALL"              # space freed
"$@" --output-dir "$SMALL/run" --resume > "$LOGS/resumed.out" 2> "$LOGS/resumed.err"; echo $? > "$LOGS/resumed.rc"
cp "$SMALL/run/metrics.jsonl" "$LOGS/"
"""


def test_a_disk_that_fills_mid_checkpoint_keeps_the_last_one_and_resume_continues(tmp_path, uninterrupted):
    """A 40 MB tmpfs in a private mount namespace (unshare; as root or in a user namespace): the step-6 checkpoint
    does not fit beside the step-3 one."""
    args = ["--max-steps", "9", "--micro-batch-size", "4", "--save-every", "3", "--eval-every", "3",
            "--keep-checkpoints", "1"]
    reference = uninterrupted(*args)
    small, logs = tmp_path / "small", tmp_path / "logs"
    small.mkdir()
    logs.mkdir()
    namespace = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*namespace, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                           capture_output=True, text=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (unshare: {probe.stderr.strip()[:200]})")
    command = [sys.executable, SCRIPT, "--config", RECIPE, *FAST, *args]
    subprocess.run([*namespace, "bash", "-c", FULL_DISK_SCRIPT, "full-disk", *command], cwd=REPO, timeout=600,
                   env={**launch_environment(), "SMALL": str(small), "LOGS": str(logs)}, check=True)

    stderr = (logs / "full.err").read_text()
    assert (logs / "full.rc").read_text().strip() == "1", stderr[-3000:]
    assert f"No space left in {small}/run/checkpoints for the step-6 checkpoint: it needs about 24 MB" in stderr
    assert "step_00000003 is complete and kept" in stderr and "then rerun with --resume" in stderr
    assert (logs / "left.txt").read_text().split() == [".", "..", "step_00000003"], "a half-written folder was left"
    assert (logs / "resumed.rc").read_text().strip() == "0", (logs / "resumed.err").read_text()[-3000:]
    resumed = [json.loads(line) for line in (logs / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == list(range(1, 10))
    assert [r["loss"] for r in resumed] == pytest.approx(losses(reference), rel=1e-6)


def test_a_truncated_or_corrupted_checkpoint_file_is_refused_at_resume_naming_it(tmp_path):
    args = ["--max-steps", "6", "--micro-batch-size", "4", "--save-every", "3", "--keep-checkpoints", "2"]
    output = tmp_path / "run"
    pretrain(output, *args)
    shutil.rmtree(output / "final")
    latest = output / "checkpoints" / "step_00000006"
    original = {name: (latest / name).read_bytes() for name in ("optimizer.bin", "model.safetensors")}
    (latest / "optimizer.bin").write_bytes(original["optimizer.bin"][:1000])
    # what --resume calls first; it refuses before accelerate reads a byte, so no launcher needs to start for it
    with pytest.raises(SystemExit) as refused:
        load_latest_checkpoint(None, output / "checkpoints")
    assert f"{latest / 'optimizer.bin'} is not the file that was written to the checkpoint (1,000 bytes" in str(
        refused.value)
    assert f"Delete {latest} to resume from step_00000003, the checkpoint before it." in str(refused.value)

    (latest / "optimizer.bin").write_bytes(original["optimizer.bin"])
    flipped = bytearray(original["model.safetensors"])
    flipped[-100] ^= 0x01
    (latest / "model.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(SystemExit, match="model.safetensors is not the file that was written"):
        load_latest_checkpoint(None, output / "checkpoints")

    shutil.rmtree(latest)  # the fix the message names
    resumed = pretrain(output, *args, "--resume")
    assert "resumed from step 3" in resumed.stdout + resumed.stderr and (output / "final").is_dir()
