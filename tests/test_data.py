"""fgln.mnist.data: IDX reading, the offline fallback to the bundled digits, the MNIST choice
(FGLN_MNIST), augmentation."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import socket
import time
import tomllib
from importlib import resources

import pytest
import torch

from conftest import REPO_ROOT
from fgln.base.paths import find_repo_root
from fgln.mnist import data, fetch, idx_format


def _idx_bytes(t: torch.Tensor) -> bytes:
    head = bytes([0, 0, 0x08, t.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in t.shape)
    return head + t.to(torch.uint8).contiguous().numpy().tobytes()


def _write_root(root, sizes, *, gz=False, seed=0):
    """MNIST/raw under ``root`` with random digits of the given (train, test) sizes."""
    gen = torch.Generator().manual_seed(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for (img_name, lab_name), n in zip(data._FILES.values(), sizes):
        imgs = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        labs = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8)
        for name, t in ((img_name, imgs), (lab_name, labs)):
            blob = _idx_bytes(t)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (raw / name).write_bytes(blob)
    return raw


@pytest.fixture(autouse=True)
def default_choice(monkeypatch):
    """Every test starts from the default choice ("auto") unless it sets FGLN_MNIST."""
    monkeypatch.delenv("FGLN_MNIST", raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Every TCP connection fails at once; a download attempt fails the test."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    from torchvision.datasets import MNIST

    def no_download(self):
        raise AssertionError("download attempted although no mirror is reachable")

    monkeypatch.setattr(MNIST, "download", no_download)
    return calls


# --------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    t = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    blob = _idx_bytes(t)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    assert torch.equal(idx_format.read_idx(path), t)
    assert torch.equal(idx_format.read_idx(gzip.compress(blob) if gz else blob), t)


def test_read_idx_truncated_raw_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_bytes(torch.zeros(5, 28, 28, dtype=torch.uint8))[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        idx_format.read_idx(path)


def test_read_idx_padded_raw_is_rejected(tmp_path):
    path = tmp_path / "lab"
    path.write_bytes(_idx_bytes(torch.zeros(5, dtype=torch.uint8)) + b"\0")
    with pytest.raises(ValueError, match="lab"):
        idx_format.read_idx(path)


def test_read_idx_truncated_gzip_names_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    full = gzip.compress(_idx_bytes(torch.arange(10, dtype=torch.uint8).repeat(50)))
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*gzip"):
        idx_format.read_idx(path)


def test_read_idx_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "imgs.gz"
    blob = bytearray(gzip.compress(_idx_bytes(torch.randint(0, 256, (20, 28, 28),
                                                            dtype=torch.uint8))))
    blob[len(blob) // 2] ^= 0xFF  # flipped byte: CRC or stream error
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="imgs.gz"):
        idx_format.read_idx(path)


@pytest.mark.parametrize("head, what", [(b"\x01\x00\x08\x01", "magic"),
                                        (b"\x00\x00\x0d\x01", "type code"),
                                        (b"\x00\x00\x08\x07", "dimensions"),
                                        (b"", "magic")])
def test_read_idx_bad_header(tmp_path, head, what):
    path = tmp_path / "bad"
    path.write_bytes(head + (5).to_bytes(4, "big") + bytes(5) if head else b"")
    with pytest.raises(ValueError, match=f"bad.*{what}"):
        idx_format.read_idx(path)


# --------------------------------------------------------------------------------------
# bundled digits and the offline fallback
# --------------------------------------------------------------------------------------


def test_bundled_files_are_package_data_and_intact():
    folder = resources.files("fgln.mnist") / "bundled"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".gz"))
    assert names == sorted(f"{n}.gz" for n in data.BUNDLED_SHA256)
    for n, digest in data.BUNDLED_SHA256.items():
        assert hashlib.sha256(gzip.decompress((folder / f"{n}.gz").read_bytes())).hexdigest() \
            == digest
    # pyproject declares them, so that a normal (non-editable) install ships them too
    cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = cfg["tool"]["setuptools"]["package-data"]["fgln.mnist"]
    for n in names + ["README.md"]:
        assert any(fnmatch.fnmatch(f"bundled/{n}", p) for p in patterns), n
    assert "CC BY-SA 3.0" in (folder / "README.md").read_text(encoding="utf-8")


def test_offline_falls_back_fast_with_warning(tmp_path, no_network):
    t = time.perf_counter()
    with pytest.warns(data.BundledMnistWarning, match="8,000 train / 2,000 test"):
        mn = data.load_mnist(tmp_path, download=True)
    elapsed = time.perf_counter() - t
    assert no_network, "the mirrors were not even tried"
    assert mn.source == "bundled" and mn.root is None
    assert (len(mn.train), len(mn.test)) == data.BUNDLED_SIZES
    assert elapsed < 5.0, f"offline fallback took {elapsed:.1f} s"
    labels = mn.train.labels
    assert torch.equal(torch.unique(labels), torch.arange(10))  # every digit present
    counts = torch.bincount(labels, minlength=10).double()
    assert counts.min() > 0.07 * len(labels)  # roughly balanced classes (each ~10%)


def test_hanging_network_times_out(tmp_path, monkeypatch):
    """A connection that never answers (dropped packets, stuck resolver) costs at most
    about ``timeout``: the attempt runs in a daemon thread."""
    def hang(*args, **kwargs):  # answers nothing for 3 s, then times out like a real socket
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    t = time.perf_counter()
    with pytest.warns(data.BundledMnistWarning, match="no MNIST mirror reachable"):
        mn = data.load_mnist(tmp_path, download=True, timeout=0.2)
    assert mn.source == "bundled"
    assert time.perf_counter() - t < 3.0


def test_download_false_never_touches_the_network(tmp_path, no_network):
    with pytest.warns(data.BundledMnistWarning, match="download=False"):
        mn = data.load_mnist(tmp_path, download=False)
    assert mn.source == "bundled" and not no_network


@pytest.mark.parametrize("gz", [False, True])
def test_full_data_found_in_root(tmp_path, monkeypatch, no_network, gz):
    monkeypatch.setattr(data, "FULL_SIZES", (40, 12))  # stand-in sizes, keeps the test small
    raw = _write_root(tmp_path, (40, 12), gz=gz)
    mn = data.load_mnist(tmp_path, augment=False, normalize=False)
    assert mn.source == "full" and mn.root == tmp_path and not no_network
    imgs = idx_format.read_idx(raw / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    x, y = mn.train[3]
    assert torch.equal(x, imgs[3][None].float() / 255)
    assert isinstance(y, int)


def test_download_path_uses_torchvision(tmp_path, monkeypatch):
    """Mirror reachable: torchvision's downloader fills root/MNIST/raw, then it is read."""
    monkeypatch.setattr(data, "FULL_SIZES", (30, 10))
    monkeypatch.setattr(fetch, "mirrors_reachable", lambda timeout: True)
    from torchvision.datasets import MNIST

    def fake_download(self):
        _write_root(tmp_path, (30, 10), gz=False, seed=1)

    monkeypatch.setattr(MNIST, "download", fake_download)
    mn = data.load_mnist(tmp_path, download=True)
    assert mn.source == "full" and len(mn.train) == 30


def test_failed_download_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "mirrors_reachable", lambda timeout: True)
    from torchvision.datasets import MNIST

    def broken(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", broken)
    with pytest.warns(data.BundledMnistWarning, match="download failed"):
        assert data.load_mnist(tmp_path).source == "bundled"


def test_corrupt_file_in_root_raises_naming_it(tmp_path, no_network):
    raw = _write_root(tmp_path, (20, 10))
    bad = raw / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-28])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        data.load_mnist(tmp_path)


def test_wrong_size_root_is_an_error(tmp_path, no_network):
    _write_root(tmp_path, (20, 10))
    with pytest.raises(ValueError, match="20 train / 10 test"):
        data.load_mnist(tmp_path)


def test_bundled_copy_in_root_reports_bundled(tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    folder = resources.files("fgln.mnist") / "bundled"
    for n in data.BUNDLED_SHA256:
        (raw / n).write_bytes(gzip.decompress((folder / f"{n}.gz").read_bytes()))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.BundledMnistWarning)
        mn = data.load_mnist(tmp_path)
    assert mn.source == "bundled" and mn.root == tmp_path


# --------------------------------------------------------------------------------------
# the choice: FGLN_MNIST = auto | full | bundled
# --------------------------------------------------------------------------------------


def test_choice_full_fails_fast_and_clearly_without_the_full_set(tmp_path, monkeypatch,
                                                                 no_network):
    monkeypatch.setenv("FGLN_MNIST", "full")
    t = time.perf_counter()
    with pytest.raises(data.MnistUnavailableError,
                       match=r"FGLN_MNIST=full.*could not be downloaded \(no MNIST mirror"):
        data.load_mnist(tmp_path)
    with pytest.raises(data.MnistUnavailableError, match="FGLN_DATA_DIR"):
        data.check_mnist_choice(tmp_path)
    assert no_network, "the mirrors were not tried"
    assert time.perf_counter() - t < 5.0


def test_choice_full_reads_the_full_set(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(data, "FULL_SIZES", (40, 12))
    _write_root(tmp_path, (40, 12))
    monkeypatch.setenv("FGLN_MNIST", "full")
    assert data.check_mnist_choice(tmp_path) == "full"
    mn = data.load_mnist(tmp_path, augment=False)
    assert (mn.source, mn.choice, len(mn.train)) == ("full", "full", 40) and not no_network


def test_choice_full_refuses_a_copy_of_the_bundled_digits(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(data, "BUNDLED_SIZES", (20, 10))
    _write_root(tmp_path, (20, 10))
    with pytest.raises(data.MnistUnavailableError, match="20 train / 10 test"):
        data.load_mnist(tmp_path, choice="full")


def test_choice_bundled_never_looks_for_the_full_set(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(data, "FULL_SIZES", (40, 12))
    _write_root(tmp_path, (40, 12))  # present, and still not used
    monkeypatch.setenv("FGLN_MNIST", "bundled")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.BundledMnistWarning)  # asked for: no warning
        mn = data.load_mnist(tmp_path, augment=False)
    assert (mn.source, mn.choice, mn.root) == ("bundled", "bundled", None)
    assert (len(mn.train), len(mn.test)) == data.BUNDLED_SIZES
    assert data.check_mnist_choice(tmp_path) == "bundled"
    assert not no_network


def test_choice_auto_is_the_default_and_falls_back_with_a_warning(tmp_path, no_network):
    with pytest.warns(data.BundledMnistWarning):
        mn = data.load_mnist(tmp_path, augment=False)
    assert (mn.source, mn.choice) == ("bundled", "auto")
    assert data.check_mnist_choice(tmp_path) == "auto" and data.mnist_choice() == "auto"


def test_fallback_warning_names_no_machine_path(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("FGLN_DATA_DIR", str(tmp_path))
    with pytest.warns(data.BundledMnistWarning) as caught:
        data.load_mnist(augment=False)
    message = str(caught[0].message)
    assert "the folder named by FGLN_DATA_DIR" in message and str(tmp_path) not in message
    monkeypatch.delenv("FGLN_DATA_DIR")
    repo = find_repo_root()
    if repo is not None:
        assert data.describe_data_dir(repo / ".cache" / "data") == \
            "the project's data folder (.cache/data)"
    assert data.describe_data_dir(tmp_path) == str(tmp_path.resolve())  # explicit root


def test_check_before_a_build_exits_with_the_reason(tmp_path, monkeypatch, capsys,
                                                   no_network):
    monkeypatch.setenv("FGLN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FGLN_MNIST", "full")
    with pytest.raises(SystemExit, match="error: FGLN_MNIST=full: .* FGLN_DATA_DIR"):
        data.check_mnist_choice_or_exit()
    monkeypatch.setenv("FGLN_MNIST", "bundled")
    data.check_mnist_choice_or_exit()
    assert "MNIST: bundled" in capsys.readouterr().out


def test_bad_choice(monkeypatch):
    monkeypatch.setenv("FGLN_MNIST", "everything")
    with pytest.raises(ValueError, match="FGLN_MNIST must be one of auto, full, bundled"):
        data.load_mnist()
    with pytest.raises(ValueError, match="FGLN_MNIST"):
        data.check_mnist_choice()
    monkeypatch.setenv("FGLN_MNIST", " Full ")
    assert data.mnist_choice() == "full"
    with pytest.raises(TypeError, match="choice"):
        data.mnist_choice(3)
    with pytest.raises(ValueError, match="choice"):
        data.mnist_choice("some")


def test_bad_arguments():
    with pytest.raises(ValueError, match="timeout"):
        data.load_mnist(timeout=0)
    with pytest.raises(ValueError, match="seed"):
        data.load_mnist(seed=-1)


# --------------------------------------------------------------------------------------
# datasets and augmentation
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    with pytest.warns(data.BundledMnistWarning):
        return data.load_mnist(tmp_path_factory.mktemp("empty"), download=False, augment=True,
                               seed=3)


def test_items_shape_dtype_and_normalisation(bundled):
    x, y = bundled.test[5]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    raw = bundled.test.images[5][None].float() / 255
    assert torch.allclose(x, (raw - data.MNIST_MEAN) / data.MNIST_STD)
    assert y == int(bundled.test.labels[5])
    # the constants are those of the pixels: bundled training digits close to them
    pix = bundled.train.images.float() / 255
    assert abs(float(pix.mean()) - data.MNIST_MEAN) < 0.01
    assert abs(float(pix.std()) - data.MNIST_STD) < 0.01


def test_augmentation_only_on_train_and_reproducible(bundled):
    train, test = bundled.train, bundled.test
    assert test.augment is None and isinstance(train.augment, data.BatchedAutoAugment)
    assert "CIFAR10" in str(train.augment.policy) and len(train.augment.policies) == 25
    n = 200
    plain = data.MnistDataset(train.images[:n], train.labels[:n], augment=None)
    changed = sum(not torch.equal(train[i][0], plain[i][0]) for i in range(n))
    # CIFAR10 policy: a sub-policy of two ops, each applied with probability 0.1-0.9;
    # some are no-ops on grey images (Color) or at magnitude 0: well over a third change.
    assert 0.35 * n < changed < n
    again = [train[i][0] for i in range(20)]
    assert all(torch.equal(a, train[i][0]) for i, a in enumerate(again))  # same (seed, epoch)
    train.set_epoch(1)
    try:
        moved = sum(not torch.equal(a, train[i][0]) for i, a in enumerate(again))
    finally:
        train.set_epoch(0)
    assert moved > 5  # another epoch, other draws
    before = torch.get_rng_state()
    train.__getitems__(list(range(64)))
    assert torch.equal(before, torch.get_rng_state())  # global RNG untouched


def test_batch_equals_items(bundled):
    """``__getitems__`` (one grouped call per batch) gives exactly the items one by one."""
    idx = [5, 900, 17, 3, 4000, 17, 7999, 0] + list(range(100, 164))
    batch = bundled.train.__getitems__(idx)
    for i, (x, y) in zip(idx, batch):
        xi, yi = bundled.train[i]
        assert torch.equal(x, xi) and y == yi


def test_epoch_augmentation_is_the_batch_by_batch_one(bundled):
    """The images augmented once per epoch (in chunks) are, for any batch, those of augmenting
    that batch alone from its draws; a new epoch or seed gives new ones; a pickled copy (a
    loader process) carries no augmented images and augments the same ones itself."""
    import pickle

    ds = data.MnistDataset(bundled.train.images[:5000], bundled.train.labels[:5000],
                           augment=bundled.train.augment, seed=11)
    aug = ds.augment
    gen = torch.Generator().manual_seed(0)
    for epoch in (0, 2):
        ds.set_epoch(epoch)
        idx = torch.randperm(len(ds), generator=gen)[:300].tolist()
        direct = aug(ds.images[idx][:, None], aug.draws(11, epoch, idx))
        want = (direct.to(torch.float32) / 255.0 - data.MNIST_MEAN) / data.MNIST_STD
        x, y = ds.batch(idx)
        assert torch.equal(x, want) and torch.equal(y, ds.labels[idx])
        assert torch.equal(ds.augmented_images()[idx], direct)
    first = ds.augmented_images().clone()
    ds.set_epoch(0)
    assert not torch.equal(ds.augmented_images(), first)  # another epoch, other images
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._augmented is None
    assert torch.equal(copy.augmented_images(), ds.augmented_images())
    ds.seed = 12  # another seed: recomputed, not read back
    assert not torch.equal(ds.augmented_images(), copy.augmented_images())


@pytest.mark.parametrize("seed, epoch", [(7, 3), (1, 0)])
def test_batched_autoaugment_equals_torchvision(bundled, monkeypatch, seed, epoch):
    """With the same draw, every image equals torchvision's ``AutoAugment.forward``, bit for
    bit, for every sub-policy, operation, magnitude and sign drawn in 1024 images."""
    from torchvision.transforms import AutoAugment

    aug = bundled.train.augment
    idx = list(range(1024))
    draws = aug.draws(seed, epoch, idx)
    ids, probs, signs = draws
    assert len(set(ids)) == 25  # every sub-policy drawn
    fired = {op for seq in aug.operations(draws, 28, 28) for op, _ in seq}
    assert fired == {op for pol in aug.policies for op, _, _ in pol}  # every operation fired
    imgs = bundled.train.images[idx][:, None]
    ours = aug(imgs, draws)
    ref = AutoAugment(aug.policy)
    for b in range(len(idx)):
        monkeypatch.setattr(AutoAugment, "get_params",
                            staticmethod(lambda n, b=b: (ids[b], probs[b], signs[b])))
        assert torch.equal(ours[b], ref(imgs[b])), f"image {b}, sub-policy {ids[b]}"


def test_draws_are_uniform():
    """Sub-policy ids, probabilities and signs from the hash: uniform, within 4 s.e."""
    aug = data.BatchedAutoAugment()
    m = 20_000
    ids, probs, signs = aug.draws(0, 0, range(m))
    counts = torch.bincount(torch.tensor(ids), minlength=25).double()
    p = 1 / 25
    assert float((counts / m - p).abs().max()) < 4 * (p * (1 - p) / m) ** 0.5
    assert float((probs.mean(0) - 0.5).abs().max()) < 4 * (1 / 12 / m) ** 0.5
    assert float((signs.double().mean(0) - 0.5).abs().max()) < 4 * (0.25 / m) ** 0.5
    assert float(probs.min()) >= 0 and float(probs.max()) < 1


def test_augmentation_independent_of_workers(bundled):
    from torch.utils.data import DataLoader

    ds = bundled.train.subset(48)
    ds.set_epoch(2)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=16, shuffle=False, num_workers=workers)
        batches[workers] = torch.cat([x for x, _ in loader])
    assert torch.equal(batches[0], batches[2])


def test_a_book_build_stops_first_when_the_full_set_cannot_be_had(tmp_path, monkeypatch,
                                                                   no_network):
    """The book's extension checks the MNIST choice before it executes any page."""
    import importlib.util
    from types import SimpleNamespace

    from sphinx.errors import ExtensionError

    from fgln.book import execute

    path = find_repo_root() / "book" / "_ext" / "parallel_execution.py"
    spec = importlib.util.spec_from_file_location("parallel_execution_under_test", path)
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    class Planned:  # planning and the workers' server may come first, executing may not
        def __init__(self, *args, **kwargs):
            pass

        def prepare(self):
            return self

        def start(self):
            pytest.fail("executed before the MNIST check")

    monkeypatch.setattr(execute, "BookExecution", Planned)
    monkeypatch.setenv("FGLN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FGLN_MNIST", "full")
    app = SimpleNamespace(srcdir=str(tmp_path))
    with pytest.raises(ExtensionError, match="MNIST: FGLN_MNIST=full: .* FGLN_DATA_DIR"):
        ext.execute_first(app, SimpleNamespace(nb_execution_mode="cache"))
