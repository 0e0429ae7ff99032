"""The real-speaker check's clip manifest and `scripts/real_sets.py`, on real git repositories made
here from the committed GRID clip; no network."""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core.align import pronunciations, words_of
from core.eval.real import evaluate_real, read_lines

ROOT = Path(__file__).resolve().parents[2]
GRID_CLIP = ROOT / "tests" / "data" / "real" / "grid_lbax4n.mpg"
RESERVED = {"OpenTalker/SadTalker", "OpenTalker/video-retalking", "bytedance/LatentSync", "KwaiVGI/LivePortrait",
            "TMElyralab/MuseTalk", "met4citizen/TalkingHead"}


def _load_script():
    """scripts/real_sets.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("real_sets", ROOT / "scripts" / "real_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


real_sets = _load_script()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def lipnet_copy(tmp_path: Path) -> tuple[Path, str, str]:
    """A git repository at ``repos/rizkiarm+LipNet`` holding the GRID clip where LipNet keeps it;
    returns (repos folder, commit, blob)."""
    repo = tmp_path / "repos" / "rizkiarm+LipNet"
    (repo / "evaluation" / "samples" / "GRID").mkdir(parents=True)
    shutil.copy(GRID_CLIP, repo / "evaluation" / "samples" / "GRID" / "lbax4n.mpg")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clip")
    return tmp_path / "repos", _git(repo, "rev-parse", "HEAD"), _git(repo, "rev-parse",
                                                                   "HEAD:evaluation/samples/GRID/lbax4n.mpg")


def _clip(commit: str, blob: str) -> "real_sets.Clip":
    return real_sets.Clip("dev", "grid_lbax4n", "rizkiarm/LipNet", commit, "evaluation/samples/GRID/lbax4n.mpg",
                          blob, "GRID corpus, CC BY 4.0", "lay blue at x four now")


def test_the_manifest_names_every_clip_once_by_full_commit_and_blob_and_none_from_a_reserved_repository():
    clips = real_sets.read_manifest()
    assert {clip.set for clip in clips} == {"dev", "test", "heldout", "grid"}
    assert len({clip.clip for clip in clips}) == len(clips) >= 50
    for clip in clips:
        assert re.fullmatch(r"[0-9a-f]{40}", clip.commit) and re.fullmatch(r"[0-9a-f]{40}", clip.blob), clip.clip
        assert clip.repository not in RESERVED and clip.licence, clip.clip
        assert Path(clip.path).suffix.lower() in {".mp4", ".mpg", ".flv"}, clip.clip


def test_every_line_of_the_manifest_is_in_words_the_aligner_can_pronounce():
    lined = [clip for clip in real_sets.read_manifest() if clip.line]
    assert len(lined) >= 30
    for clip in lined:
        unknown = [word for word in words_of(clip.line) if not pronunciations(word)]
        assert not unknown, f"{clip.clip}: {unknown}"


def test_the_committed_grid_clip_is_the_manifests_blob():
    blob = subprocess.run(["git", "hash-object", str(GRID_CLIP)], check=True, capture_output=True,
                          text=True).stdout.strip()
    (row,) = [clip for clip in real_sets.read_manifest() if clip.clip == "grid_lbax4n"]
    assert row.blob == blob


def test_a_set_is_written_from_the_repository_with_lines_the_real_check_reads(lipnet_copy, tmp_path):
    repos, commit, blob = lipnet_copy
    clip = _clip(commit, blob)
    repositories = real_sets.locate_repositories(repos, [clip], clone=False)
    videos = real_sets.write_videos(tmp_path / "out" / "dev", [clip], repositories)
    assert (videos / "grid_lbax4n.mpg").read_bytes() == GRID_CLIP.read_bytes()
    lines = real_sets.write_lines(tmp_path / "out" / "dev", [clip], unfitted={})
    assert read_lines(lines, ["grid_lbax4n"]) == {"grid_lbax4n": "lay blue at x four now"}


def test_a_clip_the_fit_refused_keeps_its_line_only_as_a_comment_the_real_check_skips(lipnet_copy, tmp_path):
    repos, commit, blob = lipnet_copy
    lines = real_sets.write_lines(tmp_path, [_clip(commit, blob)], unfitted={"grid_lbax4n": "no face found"})
    assert "# grid_lbax4n: not fitted (no face found)" in lines.read_text()
    assert read_lines(lines, ["another_clip"]) == {}


def test_a_clip_whose_committed_file_is_not_the_manifests_blob_is_refused(lipnet_copy, tmp_path):
    repos, commit, blob = lipnet_copy
    clip = _clip(commit, "0" * 40)
    repositories = real_sets.locate_repositories(repos, [clip], clone=False)
    with pytest.raises(real_sets.RealSetsError, match=f"grid_lbax4n: .* is blob {blob[:10]}, the manifest says 0000"):
        real_sets.write_videos(tmp_path / "out", [clip], repositories)


def test_a_path_missing_at_the_commit_is_refused_with_the_commit_named(lipnet_copy, tmp_path):
    repos, commit, blob = lipnet_copy
    clip = real_sets.Clip("dev", "gone", "rizkiarm/LipNet", commit, "evaluation/gone.mpg", blob, "x", "")
    repositories = real_sets.locate_repositories(repos, [clip], clone=False)
    with pytest.raises(real_sets.RealSetsError, match=f"has no evaluation/gone.mpg at {commit[:10]}"):
        real_sets.write_videos(tmp_path / "out", [clip], repositories)


def test_a_manifest_of_ones_own_clips_is_assembled_fitted_and_scored_and_a_second_run_keeps_the_first(
        lipnet_copy, tmp_path, capsys):
    repos, commit, blob = lipnet_copy
    manifest = tmp_path / "clips.tsv"
    row = _clip(commit, blob)
    manifest.write_text("# my actors\n" + "\t".join(real_sets.COLUMNS) + "\n"
                        + "\t".join(getattr(row, column) for column in real_sets.COLUMNS) + "\n")
    arguments = [str(tmp_path / "out"), "--repos", str(repos), "--manifest", str(manifest)]
    assert real_sets.main(arguments) == 0
    data = tmp_path / "out" / "dev" / "data"
    report = evaluate_real(data, texts=tmp_path / "out" / "dev" / "lines.tsv", closures="off")
    assert [clip["clip"] for clip in report["clips"]] == ["grid_lbax4n"] and report["clips"][0]["text"]
    fitted = sorted(path.stat().st_mtime_ns for path in data.rglob("*") if path.is_file())
    assert real_sets.main(arguments) == 2
    assert f"output folder {data} already exists" in capsys.readouterr().err
    assert sorted(path.stat().st_mtime_ns for path in data.rglob("*") if path.is_file()) == fitted


def test_a_missing_repository_stops_before_any_file_is_written_and_says_how_to_clone_it(tmp_path, capsys):
    (tmp_path / "repos").mkdir()
    status = real_sets.main([str(tmp_path / "out"), "--repos", str(tmp_path / "repos"), "--sets", "grid",
                             "--no-fit"])
    assert status == 2
    assert "git clone https://github.com/rizkiarm/LipNet.git" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_set_is_refused_with_the_manifests_sets(tmp_path, capsys):
    assert real_sets.main([str(tmp_path / "out"), "--repos", str(tmp_path), "--sets", "train"]) == 2
    assert "unknown set train; the manifest's sets: dev, test, heldout, grid" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("set\tclip\n", "the first row after the comments must be the header"),
    ("\t".join(real_sets.COLUMNS) + "\ndev\ta\n", "row 2 has 2 fields, not 8"),
    ("\t".join(real_sets.COLUMNS) + "\n" + "dev\ta\tr/x\tc\tp.mp4\tb\tl\t\n" * 2, "clip name 'a' is repeated"),
])
def test_a_malformed_manifest_is_refused_with_the_row(tmp_path, text, message):
    path = tmp_path / "clips.tsv"
    path.write_text(text)
    with pytest.raises(real_sets.RealSetsError, match=message):
        real_sets.read_manifest(path)
