"""Dataset loaders: built-ins, .npz (pickles refused), MNIST-format .npz, CSV, and the split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from api.errors import http_status
from ml.datasets import (
    BUILTINS,
    Dataset,
    load_builtin,
    load_csv,
    load_file,
    load_interactions,
    load_jsonl,
    load_mnist_npz,
    load_npz,
    split,
)
from tensorq.core.errors import InvalidRequest, OutOfRange


def test_digits_are_raw_8x8_images() -> None:
    ds = load_builtin("digits")
    assert ds.kind == "image"
    assert ds.x.shape == (1797, 8, 8, 1)
    assert ds.x.dtype == np.float32
    assert ds.x.min() == 0.0
    assert ds.x.max() == 16.0
    assert ds.y.dtype == np.int64
    assert set(ds.y.tolist()) == set(range(10))


@pytest.mark.parametrize(
    ("name", "rows", "features"), [("breast_cancer", 569, 30), ("iris", 150, 4), ("wine", 178, 13)]
)
def test_tabular_builtins_have_feature_names(name: str, rows: int, features: int) -> None:
    ds = load_builtin(name)
    assert ds.kind == "tabular"
    assert ds.x.shape == (rows, features)
    assert ds.x.dtype == np.float32
    assert ds.feature_names is not None
    assert len(ds.feature_names) == features
    assert ds.class_names is not None


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_builtin("mnist")
    for name in BUILTINS:
        assert name in caught.value.message
    assert http_status(caught.value) == 400


@pytest.mark.parametrize(
    ("shape", "kind", "loaded"),
    [((6, 3), "tabular", (6, 3)), ((6, 5, 4), "image", (6, 5, 4, 1)), ((6, 5, 4, 3), "image", (6, 5, 4, 3))],
)
def test_npz_kind_follows_the_dimensions(tmp_path: Path, shape: tuple, kind: str, loaded: tuple) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(np.prod(shape), dtype=np.uint8).reshape(shape), y=np.arange(6) % 2)
    ds = load_npz(path)
    assert ds.kind == kind
    assert ds.x.shape == loaded
    assert ds.x.dtype == np.float32
    assert ds.y.tolist() == [0, 1, 0, 1, 0, 1]


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    with pytest.raises(InvalidRequest, match="pickle"):
        load_npz(path)


def test_a_plain_pickle_posing_as_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"x": [1, 2], "y": [0, 1]}))
    with pytest.raises(InvalidRequest):
        load_npz(path)


def test_npz_needs_x_and_y_of_equal_length(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", features=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(InvalidRequest, match="'x' and 'y'"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(InvalidRequest, match="different lengths"):
        load_npz(tmp_path / "b.npz")


def test_npz_labels_must_be_class_ids(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(InvalidRequest, match="integer class ids"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.array([[0.0, np.nan], [1.0, 2.0]]), y=np.array([0, 1]))
    with pytest.raises(InvalidRequest, match="NaN"):
        load_npz(tmp_path / "b.npz")


def test_mnist_format_npz_is_joined_into_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(
        path,
        x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        y_train=np.array([0, 1, 2, 3, 4], dtype=np.uint8),
        x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        y_test=np.array([5, 6, 7], dtype=np.uint8),
    )
    ds = load_mnist_npz(path)
    assert ds.kind == "image"
    assert ds.x.shape == (8, 28, 28, 1)
    assert ds.x.dtype == np.float32
    assert ds.y.tolist() == list(range(8))
    with pytest.raises(InvalidRequest, match="MNIST"):
        load_mnist_npz(_write(tmp_path / "plain.npz", x=np.zeros((2, 2)), y=np.zeros(2)))


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_csv_with_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "flowers.csv"
    path.write_text("length,species,width\n1.0,virginica,2\n3.5,setosa,4\n5,versicolor,6\n7,setosa,8\n\n")
    ds = load_csv(path, "species")
    assert ds.kind == "tabular"
    assert ds.feature_names == ["length", "width"]
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    assert ds.y.tolist() == [2, 0, 1, 0]
    np.testing.assert_array_equal(ds.x, np.array([[1, 2], [3.5, 4], [5, 6], [7, 8]], dtype=np.float32))


def test_csv_with_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("label,a\n1,0.5\n0,0.25\n")
    ds = load_csv(path, "label")
    assert ds.y.tolist() == [1, 0]
    assert ds.class_names is None
    assert ds.feature_names == ["a"]


def test_csv_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,x,0\n2,3,1\n")
    assert load_csv(path, "label").columns[1]["type"] == "categorical"  # strings are categories now
    with pytest.raises(InvalidRequest, match="label column 'kind' not in the CSV"):
        load_csv(path, "kind")
    path.write_text("a,label\n1,0\n2\n")
    with pytest.raises(InvalidRequest, match="fields"):
        load_csv(path, "label")
    path.write_text("a,label\n" + "1,0\n" * 5)
    with pytest.raises(InvalidRequest, match="at most 3 rows"):
        load_csv(path, "label", max_rows=3)
    with pytest.raises(InvalidRequest, match="at most 1 columns"):
        load_csv(path, "label", max_columns=1)
    path.write_bytes(b"a,label\n\xff\xfe,0\n")
    with pytest.raises(InvalidRequest, match="UTF-8"):
        load_csv(path, "label")


def test_load_file_dispatches_on_format(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("a,label\n1,0\n2,1\n")
    assert load_file(csv_path, "csv", "label").y.tolist() == [0, 1]
    with pytest.raises(InvalidRequest, match="label_column"):
        load_file(csv_path, "csv")
    npz_path = _write(tmp_path / "d.npz", x=np.zeros((2, 3)), y=np.array([0, 1]))
    assert load_file(npz_path, "npz").x.shape == (2, 3)
    with pytest.raises(InvalidRequest, match="unknown dataset format"):
        load_file(npz_path, "xlsx")


def test_split_is_stratified_disjoint_and_seeded() -> None:
    ds = load_builtin("iris")
    rest, held = split(ds, 0.2, seed=1)
    assert len(rest.y) == 120
    assert len(held.y) == 30
    assert np.bincount(held.y).tolist() == [10, 10, 10]
    assert rest.feature_names == ds.feature_names
    assert held.kind == "tabular"
    rows = {tuple(r) for r in rest.x} | {tuple(r) for r in held.x}
    assert len(rows) == len({tuple(r) for r in ds.x})
    again, _ = split(ds, 0.2, seed=1)
    np.testing.assert_array_equal(again.x, rest.x)


def test_split_falls_back_to_a_plain_shuffle_and_refuses_too_few_rows() -> None:
    ds = Dataset(np.arange(10, dtype=np.float32).reshape(5, 2), np.array([0, 0, 0, 0, 1]), "tabular")
    rest, held = split(ds, 0.4, seed=0)
    assert len(rest.y) + len(held.y) == 5
    with pytest.raises(InvalidRequest, match="too few"):
        split(Dataset(ds.x[:1], ds.y[:1], "tabular"), 0.2, seed=0)
    with pytest.raises(OutOfRange):
        split(ds, 1.0, seed=0)


def test_jsonl_text_with_integer_or_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "good fun", "label": "pos"}\n\n{"text": "bad", "label": "neg"}\n')
    ds = load_jsonl(path)
    assert ds.kind == "text"
    assert ds.x.dtype == object
    assert ds.x.tolist() == ["good fun", "bad"]
    assert ds.y.tolist() == [1, 0]
    assert ds.class_names == ["neg", "pos"]
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    assert load_file(path, "jsonl").y.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a", "label": 1}\nnot json\n', "line 2 is not JSON"),
        ('{"text": 3, "label": 1}\n', "string 'text'"),
        ('{"text": "a"}\n', "'label'"),
        ('{"text": "a", "label": true}\n', "'label'"),
        ("\n\n", "no rows"),
    ],
)
def test_bad_jsonl_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidRequest, match=message):
        load_jsonl(path)


def test_jsonl_bounds_lines_and_their_length(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": 1}\n' * 5)
    with pytest.raises(InvalidRequest, match="at most 4 lines"):
        load_jsonl(path, max_rows=4)
    path.write_text('{"text": "' + "a" * 200 + '", "label": 1}\n')
    with pytest.raises(InvalidRequest, match="longer than 100 bytes"):
        load_jsonl(path, max_line=100)
    assert load_jsonl(path, require_labels=False).x[0] == "a" * 200


def test_interactions_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,when\n7,a,4.5,x\nann,b,1,y\n")
    ds = load_interactions(path)
    assert ds.kind == "interactions"
    assert ds.x.tolist() == [["7", "a"], ["ann", "b"]]
    assert ds.y.dtype == np.float32
    assert ds.y.tolist() == [4.5, 1.0]
    with pytest.raises(InvalidRequest, match="not in the CSV"):
        load_interactions(path, user_column="customer")
    path.write_text("user,item,rating\n1,a,lots\n")
    with pytest.raises(InvalidRequest, match="not numeric"):
        load_interactions(path)


def test_csv_without_a_label_column_is_all_features(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    ds = load_file(path, "csv", require_labels=False)
    assert ds.x.tolist() == [[1, 2], [3, 4]]
    assert ds.feature_names == ["a", "b"]
    assert ds.y.tolist() == [0, 0]
    with pytest.raises(InvalidRequest, match="label_column"):
        load_file(path, "csv")


def test_split_of_ratings_is_not_stratified() -> None:
    ds = Dataset(np.arange(20, dtype=np.float32)[:, None], np.linspace(0, 1, 20).astype(np.float32), "tabular")
    rest, held = split(ds, 0.25, seed=1, stratified=False)
    assert len(held.y) == 5
    assert len(rest.y) == 15
