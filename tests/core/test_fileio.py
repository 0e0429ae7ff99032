"""core.fileio.write_atomic: complete files, readable by others, and nothing left by a failure."""

import stat

import pytest

from core.fileio import FILE_MODE, write_atomic


def test_written_file_is_complete_and_world_readable(tmp_path) -> None:
    target = tmp_path / "result.txt"
    write_atomic(target, lambda path: path.write_text("take 0"))
    assert target.read_text() == "take 0"
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("good")

    def fail(path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fail)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
