"""Publish a BriskBERT model, domain variant, fine-tuned model or PEFT adapter on the Hugging Face Hub.

    briskbert-push-to-hub --model runs/tiny/final --repo-id org/briskbert-tiny --dry-run
    briskbert-push-to-hub --model runs/tiny --repo-id org/briskbert-tiny --results runs/eval/results.json
    briskbert-push-to-hub --model runs/sst2-lora/final --repo-id org/briskbert-sst2-lora \\
        --base-model org/briskbert-tiny --revision v0.1 --private

--model is the saved folder (or the run folder holding final/). The model card is rendered from the run's records
(trainers/hub/model_card.py) and written to <model>/README.md. --dry-run prints one line per file with
its size, then the card, and touches no network. The token comes from HF_TOKEN or `hf auth login`.
"""

import argparse
import sys

from briskbert.trainers.hub.upload import UploadError, push_folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="saved model/adapter folder, or the run folder holding final/")
    parser.add_argument("--repo-id", required=True, help="org/name on the Hub")
    parser.add_argument("--results", default=None, help="evaluation results JSON (briskbert-evaluate)")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing); default main")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--base-model", default=None, help="Hub id of the base model, for adapters and fine-tunes "
                                                           "whose records name a local folder")
    parser.add_argument("--no-logs", action="store_true", help="leave the TensorBoard logs out")
    parser.add_argument("--dry-run", action="store_true", help="list files and print the card; upload nothing")
    args = parser.parse_args(argv)
    if args.repo_id.count("/") != 1:
        parser.error(f"--repo-id must be org/name, got {args.repo_id!r}")
    try:
        push_folder(args.model, args.repo_id, results=args.results, revision=args.revision, private=args.private,
                    dry_run=args.dry_run, base_model=args.base_model, logs=not args.no_logs)
    except UploadError as error:
        sys.exit(f"push_to_hub: {error}")


if __name__ == "__main__":
    main()
