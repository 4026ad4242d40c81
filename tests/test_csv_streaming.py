"""The streamed CSV reader gives exactly what the careful one gives, block boundaries or not.

Reference: the careful reader itself (the streamed one switched off), and scikit-learn's arrays.
"""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import ridgelens.data as data
from ridgelens.data import _fastcsv, load_dataset
from ridgelens.errors import DataError


@pytest.fixture
def diabetes_csv(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    path = tmp_path / "diabetes.csv"
    rows = "\n".join(",".join(repr(v) for v in r) for r in np.column_stack([X, y]).tolist())
    path.write_text(",".join([f"x{i}" for i in range(10)] + ["y"]) + "\n" + rows + "\n")
    return path, X, y


def careful(monkeypatch, spec, **kw):
    with monkeypatch.context() as m:
        m.setattr(data, "read_plain_csv", lambda path: None)
        return load_dataset(spec, **kw)


@pytest.mark.parametrize("block", [64, 1000, _fastcsv.BLOCK])
def test_streamed_equals_careful_and_sklearn(diabetes_csv, monkeypatch, block):
    path, X, y = diabetes_csv
    monkeypatch.setattr(_fastcsv, "BLOCK", block)  # 64 bytes: every line is a block boundary
    assert _fastcsv.read_plain_csv(path) is not None  # the plain path did read it
    ds = load_dataset(f"csv:{path}", target="x3")
    ref = careful(monkeypatch, f"csv:{path}", target="x3")
    np.testing.assert_array_equal(ds.X, ref.X)
    np.testing.assert_array_equal(ds.y, ref.y)
    np.testing.assert_array_equal(ds.y, X[:, 3])  # repr round-trips: bit for bit
    np.testing.assert_array_equal(ds.X[:, -1], y)
    assert ds.feature_names == ref.feature_names


@pytest.mark.parametrize("body", ["1,2\n 3 ,1_0\n", "1,2\n\n3,4\n", '1,"2"\n3,4\n', "1,2\n3,٤\n", "1,2\n"])
def test_cells_numpy_reads_otherwise_go_to_the_careful_reader(tmp_path, monkeypatch, body):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n" + body)
    try:
        ref = careful(monkeypatch, f"csv:{path}")
    except DataError as exc:
        with pytest.raises(DataError, match=str(exc).split(":")[-1].strip()[:20]):
            load_dataset(f"csv:{path}")
        return
    ds = load_dataset(f"csv:{path}")
    np.testing.assert_array_equal(ds.X, ref.X)
    np.testing.assert_array_equal(ds.y, ref.y)


def test_errors_are_the_careful_readers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DataError, match=r"data row 1 \(line 3\) has 2 cells"):
        load_dataset(f"csv:{path}")
    path.write_text("a,b,y\n1,2,3\n4,nan,6\n")
    with pytest.raises(DataError, match=r"contains nan at row 1, column 1 \('b'\)"):
        load_dataset(f"csv:{path}")
