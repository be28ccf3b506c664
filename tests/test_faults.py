"""Bad input and faults: every case gives one clear message naming the file or parameter, and writes nothing.

Sections: atomic writes, run-folder locks, damaged run files (checkpoints, final files, config, history,
metrics, caches), CIFAR pickles (restricted unpickler, checksums, labels), IDX files, relative run folders,
and a failed or interrupted ``racecar run`` (a real SIGINT to the command's process group).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import pickletools
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from racecar_core import cli, files, runs
from racecar_core.chapters import ParameterError
from racecar_core.data import cifar
from racecar_core.data.cifar import UnsafePickleError, cifar_class_names, load_cifar10, load_cifar100
from racecar_core.data.idx import read_idx, write_idx
from racecar_core.experiments import chapters, get_chapter, mi
from racecar_core.files import ChecksumError, DamagedFileError
from racecar_core.runlock import LOCK_NAME, RunLock, RunLockedError, StaleLockWarning
from racecar_core.training import TrainConfig, train

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")]  # the "plain pickle" damage

REPO = Path(__file__).resolve().parents[1]


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: 'nothing was written' is an equal listing afterwards."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def never_suggests_unsafe_loading(message: str) -> None:
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, fault):
    path = tmp_path / "state.json"
    files.write_json(path, {"step": 1})
    with pytest.raises(fault), files.atomic_write(path, "w") as f:
        f.write('{"step": 2, "half')
        raise fault()
    assert json.loads(path.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failing_torch_save_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    files.save_torch(path, {"w": torch.ones(3)})
    with pytest.raises((AttributeError, pickle.PicklingError)):
        files.save_torch(path, {"w": torch.zeros(3), "bad": lambda: None})  # a lambda cannot be pickled
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_concurrent_writers_in_one_process_use_different_temporary_files(tmp_path):
    path = tmp_path / "metrics.json"
    with files.atomic_write(path, "w") as a, files.atomic_write(path, "w") as b:
        assert a.name != b.name and len(list(tmp_path.iterdir())) == 2
        a.write("first")
        b.write("second")
    assert path.read_text() == "first"  # the outer block finished last
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def _write_many(path: str, tag: int) -> None:
    for i in range(40):
        files.write_json(path, {"writer": tag, "i": i, "pad": "x" * 5000})


def test_two_processes_writing_one_file_never_clash(tmp_path):
    path = tmp_path / "shared.json"
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    workers = [ctx.Process(target=_write_many, args=(str(path), tag)) for tag in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    record = json.loads(path.read_text())  # whole, from one writer
    assert record["i"] == 39 and record["writer"] in (1, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------------
# Run-folder locks
# --------------------------------------------------------------------------------------------------


def test_a_second_lock_on_one_folder_is_refused_naming_folder_and_owner(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunLockedError) as error:
            RunLock(tmp_path / "run").acquire()
    message = str(error.value)
    assert str(tmp_path / "run") in message and f"process {os.getpid()}" in message
    assert socket.gethostname() in message
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released by the first owner


HOLDER = """
import sys, time
from racecar_core.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_another_process_is_refused_and_taken_over_once_it_died(tmp_path):
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by process {holder.pid} on host"):
            RunLock(folder).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up; the lock file stays behind
        holder.wait()
    assert (folder / LOCK_NAME).exists()
    with pytest.warns(StaleLockWarning, match=f"process {holder.pid} .*no longer runs"):
        lock = RunLock(folder).acquire()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (folder / LOCK_NAME).exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_lock_file_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    pid = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    with pytest.warns(StaleLockWarning, match=f"process {pid}"), RunLock(tmp_path):
        pass


@pytest.mark.parametrize("alive", [True, False])
def test_without_flock_the_owners_process_id_decides(tmp_path, monkeypatch, alive):
    from racecar_core import runlock

    monkeypatch.setattr(runlock, "fcntl", None)
    pid = os.getppid() if alive else _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    if alive:
        with pytest.raises(RunLockedError, match=f"process {pid}"):
            RunLock(tmp_path).acquire()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == pid  # untouched
    else:
        with pytest.warns(StaleLockWarning):
            RunLock(tmp_path).acquire().release()


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g)


CONFIG = TrainConfig(steps=12, lr=1e-2, lambda_rr=1e-2, eval_every=4, checkpoint_every=5)


def test_training_into_a_locked_run_folder_is_refused_before_writing(tmp_path, data):
    run = tmp_path / "run"
    with RunLock(run):
        before = listing(run)
        with pytest.raises(RunLockedError, match=str(run)):
            train(tiny_model(), data, CONFIG, run_dir=run, progress=False)
        assert listing(run) == before  # no config.json, no checkpoint


def test_racecar_run_into_a_locked_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "peak"
    with RunLock(out):
        status = cli.main(["run", "peak", "--preset", "smoke", "--out", str(out), "--no-progress"])
        assert status == 1
        assert f"run folder {out} is in use by process {os.getpid()}" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]


# --------------------------------------------------------------------------------------------------
# Damaged files in a run folder
# --------------------------------------------------------------------------------------------------

DAMAGE = {
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "garbage": lambda b: np.random.default_rng(0).bytes(len(b)),
    "text": lambda b: b"hello, not a checkpoint\n",
    "plain pickle": lambda b: pickle.dumps({"step": 3, "model": object}),
}


@pytest.fixture
def interrupted_run(tmp_path, data):
    """A run folder holding an unfinished run (config.json and a checkpoint)."""
    run = tmp_path / "run"
    calls = {"n": 0}

    def evaluate(model):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), data, CONFIG, evaluate=evaluate, run_dir=run, progress=False)
    assert (run / "checkpoint.pt").exists()
    return run


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_names_the_file_and_the_restart_option(interrupted_run, data, damage):
    path = interrupted_run / "checkpoint.pt"
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    before = listing(interrupted_run)
    with pytest.raises(DamagedFileError) as error:
        train(tiny_model(), data, CONFIG, run_dir=interrupted_run, progress=False)
    message = str(error.value)
    assert str(path) in message and "restart=True" in message and "--restart" in message and "delete it" in message
    never_suggests_unsafe_loading(message)
    assert error.value.__suppress_context__  # PyTorch's own advice (turn the safety off) is not shown either
    assert listing(interrupted_run) == before


def test_a_checkpoint_of_another_shape_is_reported_as_damaged(interrupted_run, data):
    path = interrupted_run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    files.save_torch(path, {k: v for k, v in state.items() if k != "optimizers"})
    with pytest.raises(DamagedFileError, match="not a training checkpoint .*optimizers"):
        train(tiny_model(), data, CONFIG, run_dir=interrupted_run, progress=False)
    state["model"] = {k: v[:1] for k, v in state["model"].items()}
    files.save_torch(path, state)
    with pytest.raises(DamagedFileError, match="do not fit this model"):
        train(tiny_model(), data, CONFIG, run_dir=interrupted_run, progress=False)


def test_restart_discards_a_damaged_checkpoint_and_trains_exactly_as_a_fresh_run(interrupted_run, data, tmp_path):
    (interrupted_run / "checkpoint.pt").write_bytes(b"")
    with pytest.warns(UserWarning, match="discarding"):
        restarted = train(tiny_model(), data, CONFIG, run_dir=interrupted_run, progress=False, restart=True)
    fresh = train(tiny_model(), data, CONFIG, run_dir=tmp_path / "fresh", progress=False)
    assert restarted.resumed_from == 0
    assert all(torch.equal(p, q) for p, q in zip(restarted.model.state_dict().values(), fresh.model.state_dict().values()))
    assert not (interrupted_run / "checkpoint.pt").exists()


@pytest.fixture
def finished_run(tmp_path, data):
    run = tmp_path / "done"
    train(tiny_model(), data, CONFIG, evaluate=lambda m: {"acc": 0.5, "arr": torch.zeros(2)}, run_dir=run, progress=False)
    return run


@pytest.mark.parametrize("name", ["model.pt", "snapshots.pt"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "plain pickle"])
def test_damaged_final_weights_or_snapshots_name_the_file(finished_run, data, name, damage):
    path = finished_run / name
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    before = listing(finished_run)
    with pytest.raises(DamagedFileError) as error:
        train(tiny_model(), data, CONFIG, run_dir=finished_run, progress=False)
    message = str(error.value)
    assert str(path) in message and f"Delete the run folder {finished_run}" in message
    never_suggests_unsafe_loading(message)
    assert listing(finished_run) == before


@pytest.mark.parametrize("content,problem", [
    (b"", "EmptyDataError"),
    (b"\x00\xff\xfe garbage \x00", "UnicodeDecodeError"),
    (b"a,b\n1,2\n", "no 'step' column"),
    (b"step,loss\nx,1\ny,2\n", "not numbers"),
    (b"step,loss\n0,1.0\n4,0.5\n", "does not end at step 12"),  # cut short
])
def test_a_damaged_history_names_the_file(finished_run, data, content, problem):
    path = finished_run / "history.csv"
    path.write_bytes(content)
    before = listing(finished_run)
    with pytest.raises(DamagedFileError, match=problem) as error:
        train(tiny_model(), data, CONFIG, run_dir=finished_run, progress=False)
    assert str(path) in str(error.value) and "Delete the run folder" in str(error.value)
    assert listing(finished_run) == before


@pytest.mark.parametrize("content", [b"", b'{"steps": 12, "lr"', b"\xff\xfe\x00", b"[1, 2]"])
def test_a_damaged_config_json_names_the_file(interrupted_run, data, content):
    path = interrupted_run / "config.json"
    path.write_bytes(content)
    before = listing(interrupted_run)
    with pytest.raises(DamagedFileError) as error:
        train(tiny_model(), data, CONFIG, run_dir=interrupted_run, progress=False)
    message = str(error.value)
    assert str(path) in message and "Delete it if" in message and "--restart" in message
    assert listing(interrupted_run) == before


@pytest.mark.parametrize("content,problem", [
    (b"", "Expecting value|JSONDecodeError"),
    (b'{"chapter": "peak", "resu', "JSONDecodeError"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "UnicodeDecodeError"),
    (b"[1, 2, 3]", "JSON list, not a dict"),
    (b'{"chapter": "peak"}', "not a metrics record"),
])
def test_a_damaged_metrics_file_names_the_file(tmp_path, content, problem):
    path = tmp_path / "metrics.json"
    path.write_bytes(content)
    with pytest.raises(DamagedFileError, match=problem) as error:
        runs.load_metrics(tmp_path)
    assert str(path) in str(error.value) and "run the chapter again" in str(error.value)
    assert listing(tmp_path) == {"metrics.json": content}
    with pytest.raises(FileNotFoundError, match="racecar run"):
        runs.load_metrics(tmp_path / "nowhere")


def test_damaged_caches_of_the_mi_chapter_name_the_file(tmp_path):
    cfg = mi.CHAPTER.configure("smoke")
    data = mi.load_data(cfg)
    cache = tmp_path / "pretrain" / "seed0.pt"
    cache.parent.mkdir()
    cache.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(DamagedFileError, match="seed0.pt is damaged.*Delete it; the pretraining is run again"):
        mi.pretrain(mi.make_model(), data, cfg, 0, tmp_path)
    files.save_torch(cache, {"something": torch.zeros(1)})
    with pytest.raises(DamagedFileError, match="not a pretraining record"):
        mi.pretrain(mi.make_model(), data, cfg, 0, tmp_path)
    plane = tmp_path / "kde" / "A.npy"
    plane.parent.mkdir()
    plane.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DamagedFileError, match="A.npy is damaged.*computed again"):
        mi._cached_plane(plane, lambda: pytest.fail("must not compute over a damaged cache"))


# --------------------------------------------------------------------------------------------------
# CIFAR python pickles
# --------------------------------------------------------------------------------------------------


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official CIFAR files (protocol 2): Python 2 ``str``
    (here both bytes and str) as BINSTRING, numpy arrays through ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def globals_of(payload: bytes) -> set[str]:
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(payload) if op.name == "GLOBAL"}


def official_batch(n: int = 4, labels=None, seed: int = 0) -> dict:
    images = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"training batch 1 of 5", b"labels": list(range(n)) if labels is None else labels,
            b"data": images, b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def write_official_cifar10(folder: Path, **batch) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(py2_pickle(official_batch(**batch)))
    meta = {b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in cifar.CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))


@pytest.fixture
def unverified(monkeypatch):
    """Stand-in files carry official names but not the official bytes: no published md5 applies."""
    monkeypatch.setattr(cifar, "OFFICIAL_MD5", {name: {} for name in cifar.OFFICIAL_MD5})


def test_files_in_the_official_format_use_only_the_allowed_globals_and_load(tmp_path, unverified):
    payload = py2_pickle(official_batch())
    assert payload[:2] == b"\x80\x02"
    assert globals_of(payload) == {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    write_official_cifar10(tmp_path)
    x, y = load_cifar10(tmp_path, "test")
    expected = official_batch()[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(x, expected)
    assert y.tolist() == [0, 1, 2, 3]
    assert cifar_class_names(tmp_path) == list(cifar.CIFAR10_CLASSES)


class CreatesFile:
    """Unpickling this calls open(path, "w"): a file appears on disk."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsCommand:
    def __reduce__(self):
        return (os.system, ("touch /tmp/racecar-pwned",))


def test_a_crafted_pickle_that_would_create_a_file_is_refused_and_creates_nothing(tmp_path, unverified):
    write_official_cifar10(tmp_path)
    marker = tmp_path / "created-by-pickle"
    batch = {**official_batch(), b"extra": CreatesFile(marker)}
    for payload in (py2_pickle(batch), pickle.dumps(batch, protocol=4)):
        (tmp_path / "data_batch_3").write_bytes(payload)
        with pytest.raises(UnsafePickleError) as error:
            load_cifar10(tmp_path, "train")
        assert str(tmp_path / "data_batch_3") in str(error.value) and "open:" in str(error.value)
        assert not marker.exists()
    pickle.loads(pickle.dumps(CreatesFile(tmp_path / "control"))).close()  # the payload is live with plain pickle
    assert (tmp_path / "control").exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps({b"data": RunsCommand()}, protocol=2),
    pickle.dumps({b"labels": [np.int64(1)], b"data": np.zeros((1, 3072), np.uint8)}),  # numpy scalars: not official
    b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01P0\n\x87.",  # a persistent id
])
def test_other_globals_and_persistent_ids_are_refused(tmp_path, unverified, payload):
    write_official_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="test_batch"):
        load_cifar10(tmp_path, "test")
    assert not Path("/tmp/racecar-pwned").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "text"])
def test_a_damaged_cifar_pickle_names_the_file(tmp_path, unverified, damage):
    write_official_cifar10(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    with pytest.raises(DamagedFileError) as error:
        load_cifar10(tmp_path, "test")
    assert str(path) in str(error.value) and "download_cifar" in str(error.value)


@pytest.mark.parametrize("loader,labels,message", [
    (lambda root: load_cifar10(root, "test"), [0, 1, 10, 2], "labels outside 0..9 .*first: 10"),
    (lambda root: load_cifar10(root, "test"), [0, -1, 2, 3], "outside 0..9"),
    (lambda root: load_cifar10(root, "test"), [0, 1, "x", 3], "list of integer labels"),
    (lambda root: load_cifar10(root, "test"), [0, 1, 2], "N labels"),
    (lambda root: load_cifar100(root, "test"), [0, 1, 100, 2], "outside 0..99"),
    (lambda root: load_cifar100(root, "test", label="coarse"), [0, 1, 20, 2], "outside 0..19"),
])
def test_cifar_labels_out_of_range_are_refused(tmp_path, unverified, loader, labels, message):
    write_official_cifar10(tmp_path, labels=labels)
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for name in ("train", "test"):
        batch = {b"data": official_batch()[b"data"][: len(labels)], b"fine_labels": labels, b"coarse_labels": labels}
        (c100 / name).write_bytes(py2_pickle(batch))
    with pytest.raises(ValueError, match=message) as error:
        loader(tmp_path)
    assert "test" in str(error.value)


def test_cifar_meta_with_the_wrong_number_of_names_is_refused(tmp_path, unverified):
    write_official_cifar10(tmp_path)
    (tmp_path / "batches.meta").write_bytes(py2_pickle({b"label_names": [b"cat", b"dog"]}))
    with pytest.raises(ValueError, match="batches.meta: b'label_names' must be a list of 10 names"):
        cifar_class_names(tmp_path)


def test_official_names_are_checked_against_the_published_md5(tmp_path, monkeypatch):
    write_official_cifar10(tmp_path)
    path = tmp_path / "test_batch"
    with pytest.raises(ChecksumError) as error:
        load_cifar10(tmp_path, "test")
    message = str(error.value)
    assert str(path) in message and cifar.OFFICIAL_MD5["cifar10"]["test_batch"] in message
    assert "torchvision" in message and "verify=False" in message
    assert load_cifar10(tmp_path, "test", verify=False)[0].shape == (4, 32, 32, 3)  # the opt-out
    digests = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    monkeypatch.setitem(cifar.OFFICIAL_MD5, "cifar10", digests)
    assert load_cifar10(tmp_path, "test")[0].shape == (4, 32, 32, 3)  # matching digests pass
    payload = bytearray(path.read_bytes())
    payload[-100] ^= 1  # one pixel changed
    path.write_bytes(bytes(payload))
    with pytest.raises(ChecksumError, match="test_batch"):
        load_cifar10(tmp_path, "test")


def test_the_published_md5_table_covers_every_file():
    for name, (_, _, splits, meta) in cifar._LAYOUT.items():
        names = {f for split in splits.values() for f in split} | {meta}
        assert set(cifar.OFFICIAL_MD5[name]) == names
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in cifar.OFFICIAL_MD5[name].values())


# --------------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("header,message", [
    (bytes([0, 0, 0x08, 3]) + b"\xff\xff\xff\xff" * 3, "header promises 79228162458924105385300197375 bytes"),
    (bytes([0, 0, 0x0E, 2]) + b"\x7f\xff\xff\xff" * 2 + b"\x00" * 16, "header promises"),
    (bytes([0, 0, 0x08, 3, 0, 0, 0, 2]), "header is cut short \\(3 sizes announced, 1 present\\)"),
])
def test_idx_headers_with_huge_or_missing_sizes_name_the_file(tmp_path, gz, header, message):
    path = tmp_path / ("bad.idx.gz" if gz else "bad.idx")
    path.write_bytes(gzip.compress(header) if gz else header)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "compressed file is damaged or cut short \\(EOFError"),
    (lambda b: b[:10] + bytes(len(b) - 10), "compressed file is damaged or cut short"),
    (lambda b: b[:-8] + b"\x00" * 8, "compressed file is damaged or cut short"),  # CRC and size trailer
    (lambda b: b[:2] + b"garbage", "compressed file is damaged or cut short"),
])
def test_truncated_or_corrupt_gz_names_the_file(tmp_path, damage, message):
    path = write_idx(tmp_path / "images.idx.gz", np.arange(3000, dtype=np.uint8).reshape(30, 100))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value) and "again" in str(error.value)


# --------------------------------------------------------------------------------------------------
# Relative run folders
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,message", [
    ("../../x", "outside the repository"),
    ("..", "outside the repository"),
    ("runs/../../x", "outside the repository"),
    (".", "repository root itself"),
    ("runs/..", "repository root itself"),
    ("~no_such_user_racecar/x", "no such user"),
])
def test_relative_run_folders_escaping_the_repository_are_refused(text, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=message) as error:
        runs.resolve_run_dir(text)
    assert repr(text) in str(error.value)
    with pytest.raises(ParameterError):
        runs.save_metrics(text, "peak", {}, {})
    assert list(tmp_path.iterdir()) == []


def test_run_folders_resolve_the_same_from_any_directory(tmp_path, monkeypatch):
    expected = str(runs.REPO_ROOT / "runs" / "peak" / "x")
    for cwd in (tmp_path, runs.REPO_ROOT / "book", runs.REPO_ROOT):
        monkeypatch.chdir(cwd)
        assert runs.resolve_run_dir("runs/peak/x") == expected
        assert runs.resolve_run_dir("./runs/peak/../peak/x") == expected
    assert runs.resolve_run_dir(str(tmp_path / "abs")) == str(tmp_path / "abs")  # absolute: as given
    assert runs.resolve_run_dir("~/r") == str(Path.home() / "r")
    assert runs.resolve_run_dir("") == ""


def test_every_chapter_notebook_resolves_run_dir_before_using_it():
    for name in chapters():
        chapter = get_chapter(name)
        cells = [c for c in json.loads(chapter.notebook_path().read_text())["cells"] if c["cell_type"] == "code"]
        sources = ["".join(c["source"]) for c in cells[1:]]  # after the parameters cell
        first_use = next(i for i, s in enumerate(sources) if "run_dir" in s)
        assert f"cfg = {name}.CHAPTER.configure_from(globals())\nrun_dir = cfg.run_dir" in sources[first_use], name


def test_configure_from_resolves_run_dir():
    cfg = get_chapter("peak").configure_from({"run_dir": "runs/peak/x"})
    assert cfg.run_dir == str(runs.REPO_ROOT / "runs" / "peak" / "x")
    with pytest.raises(ParameterError, match="outside the repository"):
        get_chapter("peak").configure_from({"run_dir": "../../x"})


@pytest.mark.notebooks
def test_papermill_started_elsewhere_with_an_escaping_run_dir_writes_nothing(tmp_path):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RACECAR_STATIC": "1"}
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run([str(papermill), str(REPO / "book" / "peak.ipynb"), str(work / "out.ipynb"),
                             "-p", "preset", "smoke", "-p", "run_dir", "../../x"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "outside the repository" in result.stdout + result.stderr
    assert not (tmp_path / "x").exists() and not (REPO.parent / "x").exists()
    assert sorted(p.name for p in work.iterdir()) == ["out.ipynb"]


# --------------------------------------------------------------------------------------------------
# Failed and interrupted chapter runs
# --------------------------------------------------------------------------------------------------


def racecar_temp_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("racecar-*")}


def test_a_failed_run_keeps_its_notebook_in_the_run_folder_and_no_temporary_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "peak"
    before = racecar_temp_folders()

    def failing(chapter, params, output, *args):
        output.write_text("{}")  # papermill writes the notebook as it goes
        raise RuntimeError("cell 5 failed")

    monkeypatch.setattr(cli, "_execute", failing)
    assert cli.main(["run", "peak", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["failed-peak.ipynb"]
    assert f"kept at {out / 'failed-peak.ipynb'}" in capsys.readouterr().err
    assert racecar_temp_folders() == before


LOOP_MARKER = """
import os
from pathlib import Path
from racecar_core import training

_step = training._Loop.step

def step(self, batch):  # test instrumentation: a file appears once the training loop has run one step
    _step(self, batch)
    if self.completed == 1:
        Path(os.environ["RACECAR_TEST_LOOP_MARKER"]).touch()

training._Loop.step = step
"""


@pytest.mark.notebooks
def test_ctrl_c_reaches_the_kernel_which_checkpoints_and_the_command_exits_130(tmp_path):
    out, marker = tmp_path / "peak", tmp_path / "loop-started"
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-loop-marker.py").write_text(LOOP_MARKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "IPYTHONDIR": str(tmp_path / "ipython"),
           "RACECAR_TEST_LOOP_MARKER": str(marker)}
    before = racecar_temp_folders()
    command = [sys.executable, "-m", "racecar_core.cli", "run", "peak", "--preset", "smoke", "-p", "steps", "100000",
               "--out", str(out), "--no-progress"]
    # its own process group, like a terminal's foreground job; the kernel gets a session of its own
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the training loop did not start"
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "run the same command again to resume" in output
    checkpoint = torch.load(out / "Std-seed0" / "checkpoint.pt", weights_only=True)
    assert 1 <= checkpoint["step"] < 20_000  # saved by the interrupt, not a periodic one (every 20000 steps)
    assert (out / "failed-peak.ipynb").exists() and not (out / "peak.ipynb").exists()
    assert not (out / "metrics.json").exists() and not (out / LOCK_NAME).exists()
    assert racecar_temp_folders() == before


def test_ctrl_c_before_the_kernel_starts_stops_at_once_and_no_cell_starts_after_an_interrupt():
    interrupt = cli._KernelInterrupt()
    previous = signal.getsignal(signal.SIGINT)
    with interrupt.installed():
        assert signal.getsignal(signal.SIGINT) == interrupt.on_sigint
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # no kernel yet: the command stops as before
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) == previous  # restored
    interrupt.before_cell(cell=None, cell_index=0)  # not interrupted: cells run
    interrupt.interrupted = True
    with pytest.raises(cli._KernelInterrupt.Stop):
        interrupt.before_cell(cell=None, cell_index=1)


def test_racecar_run_restart_discards_only_unfinished_checkpoints(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "checkpoint.pt").write_bytes(b"damaged")
    (tmp_path / "b" / "model.pt").write_bytes(b"finished")
    assert cli.discard_checkpoints(tmp_path) == [tmp_path / "a" / "checkpoint.pt"]
    assert not (tmp_path / "a" / "checkpoint.pt").exists() and (tmp_path / "b" / "model.pt").exists()
    assert cli.discard_checkpoints(tmp_path / "nothing") == []


# --------------------------------------------------------------------------------------------------
# Bad command-line input: refused before any work, nothing written
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["run", "nosuch"], "unknown chapter 'nosuch'"),
    (["run", "peak", "-p", "stepz", "10"], "no parameter 'stepz'"),
    (["run", "peak", "-p", "steps", "ten"], "expects int, got 'ten'"),
    (["run", "peak", "-p", "steps", "-5"], "must be >= 1"),
    (["run", "peak", "--preset", "huge"], "preset must be one of"),
    (["run", "peak", "-p", "preset", "cpu"], "--preset"),
    (["run", "mnist", "-p", "data_dir", "/no/such/mnist"], "does not exist"),
    (["run", "peak", "-p", "lambda_rr", "-1e-5"], "'lambda_rr' must be >= 0.0, got -1e-05"),
    (["run", "peak", "-p", "lambda_ort", "-inf"], "'lambda_ort' must be finite"),
    (["run", "peak", "-p", "lambda_rr=-2"], "'lambda_rr' must be >= 0.0"),
    (["run", "peak", "-p", "data_seed", str(10**27)], "'data_seed' must be <= 2147483647"),
    (["run", "peak", "-p", "data_dir", "~nouser_racecar/x"], "cannot expand"),
    (["run", "peak", "-p", "data_dir", __file__], "is a file"),
    (["run", "peak", "-p", "steps"], "-p needs a name and a value"),
    (["run", "peak", "-p", "seeds", "1001"], "'seeds' must be <= 1000"),
    (["run", "peak", "-p", "lr", "nan"], "'lr' must be finite"),
    (["run", "peak", "-p", "loss", "mse"], "must be one of ['cross_entropy', 'double_softmax']"),
    (["run", "mi", "-p", "test_fraction", "0.95"], "'test_fraction' must be <= 0.9"),
    (["run", "resnet", "-p", "depth", "21"], "parameter 'depth'"),
    (["run", "resnet", "-p", "dataset", "cifar10"], "needs data_dir"),
    (["run", "peak", "--cell-timeout", "0"], "--cell-timeout must be a positive number"),
    (["book", "--jobs", "0"], "--jobs must be >= 1"),
    (["book", "--preset", "gpu"], "preset must be one of"),
    (["scorecard", "/no/such/runs"], "not a folder of runs"),
])
def test_cli_rejects_bad_input_before_any_work(argv, message, capsys, tmp_path):
    """Every kind of bad command-line input: a clear message, exit status 2, nothing written."""
    before = sorted((runs.REPO_ROOT / "runs").rglob("*")) if (runs.REPO_ROOT / "runs").exists() else []
    out = tmp_path / "run"
    assert cli.main([*argv, "--out", str(out)] if argv[0] == "run" and argv[1] != "nosuch" else argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    after = sorted((runs.REPO_ROOT / "runs").rglob("*")) if (runs.REPO_ROOT / "runs").exists() else []
    assert before == after
