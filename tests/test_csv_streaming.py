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
        m.setattr(data, "read_plain_csv", lambda *a: None)
        return load_dataset(spec, **kw)


@pytest.mark.parametrize("block", [64, 1000, _fastcsv.BLOCK])
def test_streamed_equals_careful_and_sklearn(diabetes_csv, monkeypatch, block):
    path, X, y = diabetes_csv
    monkeypatch.setattr(_fastcsv, "BLOCK", block)  # 64 bytes: every line is a block boundary
    assert _fastcsv.read_plain_csv(path, "x3", data._check_header) is not None  # the plain path did read it
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
    with pytest.raises(DataError, match=r"line 3 has 2 cells"):
        load_dataset(f"csv:{path}")
    path.write_text("a,b,y\n1,2,3\n4,nan,6\n")
    with pytest.raises(DataError, match=r"column 'b' holds 'nan' at line 3 \(column 2;"):
        load_dataset(f"csv:{path}")


def _numpy_only(monkeypatch):
    monkeypatch.setattr(_fastcsv, "_block_parser", lambda n_bytes: _fastcsv._parse_numpy)  # as without pandas


@pytest.fixture(autouse=True)
def _pandas_for_every_size(monkeypatch):
    monkeypatch.setattr(_fastcsv, "PANDAS_FROM", 0)  # small test files take the large files' parser


def _outcome(spec, **kw):
    try:
        ds = load_dataset(spec, **kw)
    except DataError as exc:
        return str(exc)
    return ds.X, ds.y, ds.feature_names


_CELLS = ["1", "-2.5", "+3", "4e+2", "5E-3", "1e400", "-0", ".5", "7.", " 8", "9 ", "", "1e", "+", "1_0", "12345678901234567890.123",
          "0.1000000000000000055511151231257827", "nan", "2.2250738585072011e-308", "4,5"]


@pytest.mark.parametrize("seed", range(40))
def test_random_files_read_as_the_careful_reader_reads_them(tmp_path, monkeypatch, seed):
    """Random bodies of awkward cells: the pandas path, the NumPy path and the careful reader agree bit for bit,
    or raise the same message (blocks of 64 bytes, so that boundaries fall everywhere)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rng.integers(1, 12)):
        if rng.random() < 0.08:
            lines.append("")
            continue
        p = np.full(len(_CELLS), 0.1 / (len(_CELLS) - 6))
        p[:6] = 0.15  # mostly valid cells
        lines.append(",".join(rng.choice(_CELLS, size=3, p=p / p.sum())))
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n" + "\n".join(lines) + ("\n" if rng.random() < 0.7 else ""))
    monkeypatch.setattr(_fastcsv, "BLOCK", 64)
    fast = _outcome(f"csv:{path}", target="b")
    with monkeypatch.context() as m:
        _numpy_only(m)
        numpy_path = _outcome(f"csv:{path}", target="b")
    with monkeypatch.context() as m:
        m.setattr(data, "read_plain_csv", lambda *a: None)
        ref = _outcome(f"csv:{path}", target="b")
    for got in (fast, numpy_path):
        if isinstance(ref, str):
            assert got == ref
        else:
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])
            assert got[2] == ref[2]


def test_plain_values_equal_python_float(tmp_path, monkeypatch):
    """Every value of a plain file is the float Python's ``float`` gives (pandas' converter and NumPy's alike)."""
    rng = np.random.default_rng(1)
    values = rng.standard_normal((300, 3)) * 10.0 ** rng.integers(-300, 300, size=(300, 3))
    cells = [[f"{v:.17g}", f"{v:+.20e}", f"{v:.6g}"][k % 3] for k, v in enumerate(values.ravel())]
    path = tmp_path / "v.csv"
    path.write_text("a,b,y\n" + "\n".join(",".join(cells[i:i + 3]) for i in range(0, len(cells), 3)) + "\n")
    expect = np.array([float(c) for c in cells]).reshape(-1, 3)
    assert _fastcsv._block_parser(1) is not _fastcsv._parse_numpy  # pandas' parser (installed with the tests)
    for numpy_only in (False, True):
        with monkeypatch.context() as m:
            if numpy_only:
                _numpy_only(m)
            assert _fastcsv.read_plain_csv(path, None, data._check_header) is not None  # the plain path read it
            ds = data._load_csv(path, None)  # the reader alone: load_dataset refuses values past 1e±50 (check_scale)
        np.testing.assert_array_equal(ds.X, expect[:, :2])
        np.testing.assert_array_equal(ds.y, expect[:, 2])


def test_the_arrays_are_filled_in_place_when_the_first_block_underestimates(tmp_path, monkeypatch, diabetes_csv):
    """A long first row predicts too few rows: X and y grow in place and the values stay right."""
    path, X, y = diabetes_csv
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], ",".join(["1." + "0" * 300] * 11), *text[1:]]) + "\n")
    monkeypatch.setattr(_fastcsv, "BLOCK", 32)  # the first block is that row alone: 3300 bytes for one row
    grown = []
    real = _fastcsv._fill

    def spy(blocks, t, n_bytes):
        def watched():
            for values, size in blocks:
                grown.append(n_bytes / size)  # rows the first block predicts: about 30, not 443
                yield values, size
        return real(watched(), t, n_bytes)

    monkeypatch.setattr(_fastcsv, "_fill", spy)
    ds = load_dataset(f"csv:{path}")
    assert grown[0] < 40
    np.testing.assert_array_equal(ds.X[1:], X)
    np.testing.assert_array_equal(ds.y[1:], y)
    np.testing.assert_array_equal(ds.X[0], np.ones(10))


def test_a_small_file_does_not_pay_for_importing_pandas(diabetes_csv):
    """Below PANDAS_FROM a fresh process reads with NumPy (pandas' import would cost more than it saves)."""
    import subprocess
    import sys

    path, _X, _y = diabetes_csv
    code = ("import sys; from ridgelens.data import load_dataset; "
            f"assert load_dataset({f'csv:{path}'!r}).X.shape == (442, 10); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("block", [32, 1 << 20])
def test_a_column_out_of_float64_reach_names_its_data_row_read_whole_or_streamed(diabetes_csv, monkeypatch, block):
    """load_dataset and the streamed moments (stream_least_squares) refuse it alike, the row counted over blocks."""
    path, _, _ = diabetes_csv
    lines = path.read_text().splitlines()
    cells = lines[300].split(",")
    cells[1] = "3e200"
    lines[300] = ",".join(cells)  # data row 300 (line 301)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(_fastcsv, "BLOCK", block)  # 32 bytes: hundreds of blocks before that row
    for read in (load_dataset, data.stream_least_squares):
        with pytest.raises(DataError, match=r"column 'x1' peaks at 3e\+200 \(data row 300\), .*divide it by 1e200"):
            read(f"csv:{path}")


def test_the_streamed_scale_check_is_of_the_whole_column_not_a_block(diabetes_csv, monkeypatch):
    """Column x1 tiny in its second half only: its peak is normal, so both readers accept the file
    (the streamed one refused it, judging the last block alone: 'peaks at 4e-80')."""
    path, X, y = diabetes_csv
    lines = path.read_text().splitlines()
    for k in range(221, len(lines)):
        cells = lines[k].split(",")
        cells[1] = repr(float(cells[1]) * 1e-80)
        lines[k] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(_fastcsv, "BLOCK", 1000)  # many blocks, the later ones all tiny in x1
    assert data.stream_least_squares(f"csv:{path}").n == len(y)
    assert load_dataset(f"csv:{path}").X.shape == X.shape
