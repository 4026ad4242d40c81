"""Reading a CSV: every malformed file is one clear DataError naming the file, never a silent misread."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ridgelens.cli import main
from ridgelens.data import load_dataset, read_input
from ridgelens.errors import DataError

ROWS = "1,2,3\n4,5,7\n7,8,8\n"


def analyze_csv(tmp_path, capsys, data: bytes, *extra):
    """Run `analyze` on a CSV holding ``data``; returns (code, stderr) and checks the error contract."""
    src = tmp_path / "d.csv"
    src.write_bytes(data)
    out = tmp_path / "o"
    code = main(["analyze", "--data", f"csv:{src}", "--model", "linear", "--lambdas", "0.1", *extra,
                 "--out", str(out)])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    if code != 0:
        assert code == 2
        assert [ln.startswith("ridgelens: error:") for ln in err.splitlines()].count(True) == 1, err
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]  # no temporary leftovers
    return code, err


@pytest.mark.parametrize(("header", "extra", "needles"), [
    # Before: the first 'y' was the target (column 0) and the second a feature, silently.
    ("y,b,c,y", [], ["more than once", "'y' (columns 1, 4)"]),
    # Before: ',,,' gave four columns named '' and the target was column 0.
    (",,,", [], ["no name for columns 1, 2, 3, 4"]),
    # Before: --target a took the first 'a'.
    ("a,a,c,y", ["--target", "a"], ["'a' (columns 1, 2)"]),
    (" a ,a,c,y", [], ["'a' (columns 1, 2)"]),  # names are compared after stripping blanks
    ("a,,c,y", [], ["no name for column 2 "]),
])
def test_duplicate_or_blank_names_are_refused(tmp_path, capsys, header, extra, needles):
    code, err = analyze_csv(tmp_path, capsys, f"{header}\n1,2,3,4\n5,6,7,9\n8,1,2,3\n".encode(), *extra)
    assert code == 2
    for needle in needles:
        assert needle in err, err
    assert "d.csv" in err


def test_utf8_bom_is_stripped_from_the_first_name(tmp_path):
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbfa,b,t\n" + ROWS.encode())
    ds = load_dataset(f"csv:{src}")
    assert ds.feature_names == ["a", "b"] and ds.target_name == "t"
    # Before, the name was '\ufeffa', so --target a was "unknown".
    ds = load_dataset(f"csv:{src}", target="a")
    assert ds.target_name == "a" and ds.feature_names == ["b", "t"]
    np.testing.assert_array_equal(ds.y, [1, 4, 7])


def test_latin1_file_names_the_file_the_offset_and_the_fix(tmp_path, capsys):
    data = b"a,prix,t\n1,2,3\n4,5,7\n7,8,8\n" + "d,é,t\n".encode("latin-1")
    code, err = analyze_csv(tmp_path, capsys, data)
    offset = data.index(b"\xe9")
    assert code == 2
    assert "d.csv is not UTF-8" in err and f"byte 0xe9 at offset {offset} (line 5)" in err
    assert "iconv -f latin1 -t utf-8" in err


def test_utf16_file_is_recognised(tmp_path, capsys):
    code, err = analyze_csv(tmp_path, capsys, ("a,b,t\n" + ROWS).encode("utf-16"))
    assert code == 2 and "UTF-16 byte-order mark" in err and "offset 0" in err


@pytest.mark.parametrize(("data", "needle"), [
    (b"", "is empty"),
    (b"a,b,t\n", "no data rows"),
    (b"a,b,t\n\n \n", "no data rows"),
    (b"a,b,t\n1,2,3\n", "single data row (line 2)"),
    (b"1,2,3\n4,5,6\n7,8,9\n", "holds only numbers; the CSV needs a header row"),
    (b"a,b,t\n1,2,3\n\n4,x,6\n7,8,9\n", "line 4 holds 'x' (column 2; line 1 is the header)"),
    (b"a,b,t\n1,2,3\n4,,6\n7,8,9\n", "column 'b' is not numeric: line 3 holds ''"),
    (b"a,b,t\n1,2,3\n4,5\n", "line 3 has 2 cells, the header has 3"),
    (b'a,b,t\n1,2,3\n4,"5\n', "line 3 has 2 cells"),  # an unclosed quote swallows the rest: still one line
    # a quoted cell spanning lines: the record is named by where it starts and ends (it was named by its end)
    (b'a,b,t\n1,2,3\n"4\n5",6\n7,8,9\n', "the record on lines 3-4 has 2 cells, the header has 3"),
    (b'a,b,t\n1,2,3\n4,"x\ny\nz",6\n7,8,9\n', "column 'b' is not numeric: the record on lines 3-5 holds"),
    (b'a,b,t\n"1\n",2,3\n4,x,6\n', "column 'b' is not numeric: line 4 holds 'x'"),  # after one: its own line
])
def test_malformed_files(tmp_path, capsys, data, needle):
    code, err = analyze_csv(tmp_path, capsys, data)
    assert code == 2 and needle in err, err


@pytest.mark.parametrize(("data", "name", "cell", "line", "column"), [
    (b"a,b,t\n1,2,3\n4,nan,6\n7,8,9\n", "b", "nan", 3, 2),  # a plain file: the fast reader's
    (b"a,b,t\n1,2,3\n\n4,5,6\n7,8,inf\n", "t", "inf", 5, 3),  # a blank line still counts
    (b'a,"b",t\n1,2,3\n4,5,6\n7,1e999,9\n', "b", "1e999", 4, 2),  # quotes: the careful reader's; overflows
])
def test_non_finite_cells_are_named_by_file_line_and_column(tmp_path, capsys, data, name, cell, line, column):
    """The line as an editor numbers it (the header is line 1) and the column's name, not X's 0-based row."""
    assert data.split(b"\n")[line - 1].split(b",")[column - 1] == cell.encode()  # the file does hold it there
    code, err = analyze_csv(tmp_path, capsys, data)
    assert code == 2, err
    assert f"column {name!r} holds {cell!r} at line {line} (column {column}; line 1 is the header)" in err, err
    assert "1 non-finite value(s) in all" in err


def test_quoted_names_and_crlf_are_read(tmp_path):
    src = tmp_path / "q.csv"
    src.write_bytes(b'"a,1",b,t\r\n1,2,3\r\n4,5,7\r\n7,8,8\r\n')
    ds = load_dataset(f"csv:{src}")
    assert ds.feature_names == ["a,1", "b"]
    np.testing.assert_array_equal(ds.X, [[1, 2], [4, 5], [7, 8]])


def test_a_folder_a_device_a_missing_file_and_an_empty_spec(tmp_path, capsys):
    for spec, needle in [(f"csv:{tmp_path}", "is a folder, not a file"),
                         ("csv:/dev/null", "not a regular file"),
                         (f"csv:{tmp_path / 'nope.csv'}", "not found"),
                         ("csv:", "csv: needs a file path")]:
        with pytest.raises(DataError, match=needle):
            load_dataset(spec)
    out = tmp_path / "o"
    assert main(["analyze", "--data", f"csv:{tmp_path}", "--model", "linear", "--lambdas", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ridgelens: error: CSV file") and "is a folder" in err and err.count("\n") == 1
    assert not out.exists()


def test_unreadable_file(tmp_path, monkeypatch):
    src = tmp_path / "secret.csv"
    src.write_text("a,t\n1,2\n3,4\n")
    src.chmod(0)
    try:
        with open(src, "rb"):
            readable = True  # root ignores permission bits: make the read itself fail instead
    except PermissionError:
        readable = False
    if readable:
        def deny(self):
            raise PermissionError(13, "Permission denied", str(self))

        def deny_open(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", deny)
        monkeypatch.setattr(Path, "open", deny_open)  # the streamed reader opens the file itself
    try:
        with pytest.raises(DataError, match=r"secret\.csv cannot be read: Permission denied"):
            load_dataset(f"csv:{src}")
    finally:
        src.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_read_input_names_what_it_reads(tmp_path):
    with pytest.raises(DataError, match="the --weights file path is empty"):
        read_input("", "--weights file")
    with pytest.raises(DataError, match="NUL"):
        read_input("a\x00b", "--weights file")
    with pytest.raises(DataError, match="cannot be read"):
        read_input("x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1), "RESULTS_JSON file")
