"""Loading a pushed model as a user would: the pushed tree laid out as a Hub cache (HF_HUB_CACHE/models--org--name),
read in a fresh interpreter where briskbert cannot be imported, HF offline. Every Auto class, the tokenizer and
pipeline("fill-mask") match the original exactly; the shipped code opens no socket, starts no process and
unpickles nothing."""

import ast
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from briskbert import BriskBertConfig, BriskBertForMaskedLM
from conftest import MODEL_CODE_FILES
from local_hub import LocalHub

from briskbert.trainers.hub.upload import code_files, push_folder

REPO_ID = "org/briskbert-tiny"
SHA = "0123456789abcdef0123456789abcdef01234567"
HEADS = ["AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification", "AutoModelForTokenClassification",
         "AutoModelForQuestionAnswering", "AutoModelForMultipleChoice"]
TEXTS = ["the people of the united [MASK] of america .", "We observe today not a victory of party but a "
         "celebration of freedom, symbolizing an end as well as a beginning."]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tokenizer):
    """(model folder, Hub cache) after pushing the folder to a local Hub and laying its tree out as the cache."""
    root = tmp_path_factory.mktemp("hub_cache")
    torch.manual_seed(0)
    model = BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    model.save_pretrained(root / "run" / "final")
    tokenizer.save_pretrained(root / "run" / "final")
    push_folder(root / "run" / "final", REPO_ID, api=LocalHub(root / "hub"), echo=lambda *_: None)
    repo = root / "cache" / f"models--{REPO_ID.replace('/', '--')}"
    shutil.copytree(root / "hub" / REPO_ID / "tree" / "main", repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return root / "run" / "final", root / "cache"


LOAD = """
import os, sys
os.environ["HF_HUB_CACHE"] = {cache!r}
import torch
from safetensors.torch import save_file
import transformers
from transformers import AutoTokenizer, pipeline

batch = dict(AutoTokenizer.from_pretrained({repo!r}, trust_remote_code=True)({texts!r}, padding=True,
                                                                           return_tensors="pt"))
save_file(batch, "batch.safetensors")
for name in {heads!r}:
    torch.manual_seed(0)
    model = getattr(transformers, name).from_pretrained({repo!r}, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    inputs = {{k: v.unsqueeze(1).expand(-1, 2, -1).contiguous() for k, v in batch.items()}} \\
        if name == "AutoModelForMultipleChoice" else batch
    with torch.no_grad():
        out = model(**inputs)
    tensors = {{k: v for k, v in out.items() if isinstance(v, torch.Tensor)}}
    save_file({{**{{"out." + k: v.clone().contiguous() for k, v in tensors.items()}},
               **{{"state." + k: v.clone().contiguous() for k, v in model.state_dict().items()}}}}, name + ".safetensors")
fill = pipeline("fill-mask", model={repo!r}, trust_remote_code=True)
print(repr([(r["token"], r["score"]) for r in fill(TEXTS_0, top_k=5)]))
"""


def test_every_head_tokenizer_and_pipeline_load_from_the_hub_cache_offline(hub_cache, run_fresh_python, tmp_path,
                                                                             tokenizer):
    import transformers
    from transformers import pipeline

    import briskbert

    folder, cache = hub_cache
    code = LOAD.format(cache=str(cache), repo=REPO_ID, texts=TEXTS, heads=HEADS).replace("TEXTS_0", repr(TEXTS[0]))
    printed = run_fresh_python(code, tmp_path)

    batch = load_file(tmp_path / "batch.safetensors")
    expected = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    assert batch.keys() == expected.keys() and all(torch.equal(batch[k], expected[k]) for k in batch)
    weights = load_file(folder / "model.safetensors")
    for name in HEADS:
        saved = load_file(tmp_path / f"{name}.safetensors")
        state = {k.removeprefix("state."): v for k, v in saved.items() if k.startswith("state.")}
        ours = briskbert.AUTO_CLASSES[getattr(transformers, name)].from_pretrained(folder).eval()
        ours.load_state_dict(state)  # the child's weights (heads newly initialised there) in our classes
        for key, value in weights.items():  # the pushed encoder weights arrived intact
            if key in state:
                assert torch.equal(state[key], value), (name, key)
        inputs = {k: v.unsqueeze(1).expand(-1, 2, -1).contiguous() for k, v in batch.items()} \
            if name == "AutoModelForMultipleChoice" else batch
        with torch.no_grad():
            out = ours(**inputs)
        outputs = {k.removeprefix("out."): v for k, v in saved.items() if k.startswith("out.")}
        assert outputs, name
        for key, value in outputs.items():
            assert torch.equal(out[key], value), (name, key)
    fill = pipeline("fill-mask", model=BriskBertForMaskedLM.from_pretrained(folder).eval(), tokenizer=tokenizer)
    assert printed.strip() == repr([(r["token"], r["score"]) for r in fill(TEXTS[0], top_k=5)])


FORBIDDEN_MODULES = {"socket", "urllib", "http", "requests", "httpx", "aiohttp", "subprocess", "multiprocessing",
                     "pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "huggingface_hub", "ftplib"}
FORBIDDEN_CALLS = {"load", "system", "popen", "exec", "eval", "urlopen", "Popen", "spawn", "fork", "hf_hub_download",
                   "snapshot_download", "__import__"}


def test_the_shipped_code_imports_and_calls_nothing_that_reaches_out(hub_cache):
    folder, _ = hub_cache
    shipped = code_files(folder, json.loads((folder / "config.json").read_text()))
    assert shipped == MODEL_CODE_FILES
    for name in shipped:
        for node in ast.walk(ast.parse((folder / name).read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else []
            else:
                modules = []
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN_MODULES, (name, module)
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                assert called not in FORBIDDEN_CALLS, (name, ast.unparse(node))
            if isinstance(node, ast.Call) and "open" == getattr(node.func, "id", ""):
                pytest.fail(f"{name} opens a file: {ast.unparse(node)}")


GUARDED = """
import os
os.environ["HF_HUB_CACHE"] = {cache!r}
import pickle, socket, subprocess, torch
import transformers.modeling_utils  # transformers' own imports done first: the guards watch the model's code
from transformers import AutoModelForMaskedLM, AutoTokenizer

def refuse(what):
    def guard(*args, **kwargs):
        raise AssertionError(what + " called while loading or running the model")
    return guard

socket.socket.connect = refuse("socket.connect")
socket.create_connection = refuse("socket.create_connection")
socket.getaddrinfo = refuse("socket.getaddrinfo")
subprocess.Popen.__init__ = refuse("subprocess.Popen")
os.system = refuse("os.system")
os.fork = refuse("os.fork")
pickle.load = pickle.loads = refuse("pickle.load")
class RefusedUnpickler(pickle.Unpickler):
    __init__ = refuse("pickle.Unpickler")

pickle.Unpickler = RefusedUnpickler
torch.load = refuse("torch.load")

tokenizer = AutoTokenizer.from_pretrained({repo!r}, trust_remote_code=True)
model = AutoModelForMaskedLM.from_pretrained({repo!r}, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(**tokenizer(["a guarded [MASK] ."], return_tensors="pt")).logits
print("ok", tuple(logits.shape))
"""


def test_loading_and_running_opens_no_socket_starts_no_process_unpickles_nothing(hub_cache, run_fresh_python,
                                                                                  tmp_path):
    _, cache = hub_cache
    printed = run_fresh_python(GUARDED.format(cache=str(cache), repo=REPO_ID), tmp_path)
    assert printed.startswith("ok (1, ")
