"""Test support: a folder standing in for the Hugging Face Hub, so uploads are tested without network."""

import json
import shutil
from pathlib import Path


class LocalHub:
    """A folder standing in for the Hub, with HfApi's create_repo / create_branch / create_commit:
    <root>/<org>/<name>/tree/<branch>/... holds each branch's files, commits.json the history."""

    def __init__(self, root):
        self.root = Path(root)

    def repo(self, repo_id: str) -> Path:
        return self.root / repo_id

    def create_repo(self, repo_id: str, private: bool = False, exist_ok: bool = False, **_):
        repo = self.repo(repo_id)
        if repo.exists() and not exist_ok:
            raise FileExistsError(f"{repo_id} exists")
        if not repo.exists():
            (repo / "tree" / "main").mkdir(parents=True)
            (repo / "repo.json").write_text(json.dumps({"private": private}))
            (repo / "commits.json").write_text("[]")
        return repo

    def create_branch(self, repo_id: str, branch: str, exist_ok: bool = False, **_):
        target = self.repo(repo_id) / "tree" / branch
        if target.exists():
            if not exist_ok:
                raise FileExistsError(branch)
            return
        shutil.copytree(self.repo(repo_id) / "tree" / "main", target)

    def create_commit(self, repo_id: str, operations, commit_message: str, revision: str | None = None, **_):
        branch = revision or "main"
        tree = self.repo(repo_id) / "tree" / branch
        if not tree.is_dir():
            raise FileNotFoundError(f"no branch {branch!r} in {repo_id}")
        for operation in operations:
            target = tree / operation.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(operation.path_or_fileobj, target)
        commits = json.loads((self.repo(repo_id) / "commits.json").read_text())
        oid = f"{len(commits) + 1:040x}"
        commits.append({"oid": oid, "branch": branch, "message": commit_message,
                        "files": sorted(op.path_in_repo for op in operations)})
        (self.repo(repo_id) / "commits.json").write_text(json.dumps(commits, indent=1))
        return type("CommitInfo", (), {"oid": oid, "commit_url": None})()
