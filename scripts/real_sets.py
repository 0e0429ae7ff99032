"""Assemble the real-speaker check's clip sets from their public repositories, then fit them.

    .venv/bin/python scripts/real_sets.py OUT --repos MIRRORS [--sets dev test] [--clone] [--no-fit]
        [--manifest CLIPS.tsv]

Every clip of `scripts/real_clips.tsv` (or ``--manifest``: the same columns, e.g. a studio's own
takes of its actors) belongs to a set (dev, test, heldout, grid) and names the repository, commit,
path and git blob it comes from. For each chosen set this writes

- ``OUT/SET/videos/CLIP.EXT``: the clip, read from a local git copy of its repository (the blob
  the manifest names, so a changed file is refused, not silently scored);
- ``OUT/SET/lines.tsv``: the known lines of the clips fitted, in the format of
  ``flowvq eval --real --texts`` (a clip the fit refused, with its reason, as a comment);
- ``OUT/SET/data``: the dataset ``flowvq corpus from-videos --fps 25 --emotion talk`` makes of
  the videos (every clip kept for evaluation), unless ``--no-fit``;

after which ``flowvq eval --real OUT/SET/data --texts OUT/SET/lines.tsv`` scores the set.

A repository is looked for under ``--repos`` as ``OWNER+NAME/repo``, ``OWNER+NAME``,
``OWNER/NAME`` or ``NAME``; with ``--clone`` a missing one is cloned there from GitHub without
its files (``--filter=blob:none``), so only the clips' blobs are downloaded.
"""

import argparse
import csv
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import FlowVQError

MANIFEST = Path(__file__).with_name("real_clips.tsv")
COLUMNS = ("set", "clip", "repository", "commit", "path", "blob", "licence", "line")
DATASET_FPS = 25.0


class RealSetsError(Exception):
    """A manifest, repository or clip problem, with what to do about it."""


@dataclass(frozen=True)
class Clip:
    """One row of the manifest."""

    set: str
    clip: str
    repository: str
    commit: str
    path: str
    blob: str
    licence: str
    line: str

    @property
    def file_name(self) -> str:
        """The clip's name with its source's suffix (``grid_lbax4n.mpg``)."""
        return self.clip + Path(self.path).suffix.lower()


def read_manifest(path: Path = MANIFEST) -> list[Clip]:
    """The manifest's rows in file order; '#' lines are comments. Refuses a wrong header, a row of
    the wrong width, a repeated clip name or a clip name that is not a plain file stem."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise RealSetsError(f"{path}: the first row after the comments must be the header {'<tab>'.join(COLUMNS)}")
    clips: list[Clip] = []
    seen: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            raise RealSetsError(f"{path}: row {number} has {len(row)} fields, not {len(COLUMNS)}")
        clip = Clip(*row)
        if clip.clip in seen or not clip.clip.replace("_", "").isalnum():
            raise RealSetsError(f"{path}: row {number}: clip name {clip.clip!r} is repeated or not letters, "
                                "digits and underscores")
        seen.add(clip.clip)
        clips.append(clip)
    return clips


def find_repository(repos: Path, repository: str) -> Path | None:
    """The local git copy of ``OWNER/NAME`` under ``repos``, or None."""
    owner, name = repository.split("/")
    for candidate in (repos / f"{owner}+{name}" / "repo", repos / f"{owner}+{name}", repos / owner / name,
                      repos / name):
        if candidate.is_dir() and _git(candidate, "rev-parse", "--git-dir", check=False).returncode == 0:
            return candidate
    return None


def clone_repository(repos: Path, repository: str) -> Path:
    """Clone ``OWNER/NAME`` from GitHub into ``repos/OWNER+NAME`` without its files' contents."""
    target = repos / repository.replace("/", "+")
    done = subprocess.run(["git", "clone", "--quiet", "--filter=blob:none", "--no-checkout",
                           f"https://github.com/{repository}.git", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RealSetsError(f"could not clone {repository}: {done.stderr.strip()}")
    return target


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run git in ``repo``; bytes on stdout."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if check and done.returncode != 0:
        raise RealSetsError(f"git {' '.join(args)} in {repo}: {done.stderr.decode(errors='replace').strip()}")
    return done


def clip_bytes(repo: Path, clip: Clip) -> bytes:
    """The clip's file as committed, after checking that ``commit:path`` is the manifest's blob."""
    found = _git(repo, "rev-parse", f"{clip.commit}:{clip.path}", check=False)
    if found.returncode != 0:
        raise RealSetsError(f"{clip.clip}: {clip.repository} at {repo} has no {clip.path} at {clip.commit[:10]} "
                            "(fetch that commit, or clone the repository again)")
    blob = found.stdout.decode().strip()
    if blob != clip.blob:
        raise RealSetsError(f"{clip.clip}: {clip.commit[:10]}:{clip.path} is blob {blob[:10]}, "
                            f"the manifest says {clip.blob[:10]}")
    return _git(repo, "cat-file", "blob", blob).stdout


def write_videos(out: Path, clips: Sequence[Clip], repositories: dict[str, Path]) -> Path:
    """Write ``out/videos/CLIP.EXT`` for one set's clips; returns that folder."""
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        (videos / clip.file_name).write_bytes(clip_bytes(repositories[clip.repository], clip))
    return videos


def write_lines(out: Path, clips: Sequence[Clip], unfitted: dict[str, str]) -> Path:
    """Write ``out/lines.tsv``: the known lines of the clips, those the fit refused (name -> reason)
    left as comments, since ``eval --real --texts`` refuses a line of a clip it does not have."""
    rows = ["# clip<tab>what it says (scripts/real_clips.tsv)\n"]
    for clip in clips:
        if clip.line:
            rows.append(f"# {clip.clip}: not fitted ({unfitted[clip.clip]})\n" if clip.clip in unfitted
                        else f"{clip.clip}\t{clip.line}\n")
    (out / "lines.tsv").write_text("".join(rows), encoding="utf-8")
    return out / "lines.tsv"


def locate_repositories(repos: Path, clips: Sequence[Clip], clone: bool) -> dict[str, Path]:
    """Every repository the clips need, found under ``repos`` or (``clone``) cloned there."""
    found: dict[str, Path] = {}
    for repository in sorted({clip.repository for clip in clips}):
        local = find_repository(repos, repository)
        if local is None and clone:
            local = clone_repository(repos, repository)
        if local is None:
            target = repos / repository.replace("/", "+")
            raise RealSetsError(f"no git copy of {repository} under {repos}: clone it there "
                                f"(git clone https://github.com/{repository}.git {target}) or pass --clone")
        found[repository] = local
    return found


def fit_set(videos: Path, data: Path) -> dict[str, str]:
    """Fit every clip of ``videos`` into the evaluation dataset ``data`` (all clips in train, 25 fps);
    returns the clips the fit refused, name -> reason (also printed as they happen)."""
    from core.corpus.videos import from_videos

    summary = from_videos(videos, data, fps=DATASET_FPS, emotion="talk", val_fraction=0.0, test_fraction=0.0,
                          progress=print)
    return {Path(file).stem: reason for file, reason in summary.failures}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write OUT/SET/{videos,lines.tsv,data} into")
    parser.add_argument("--repos", type=Path, required=True, help="folder holding (or to clone) the repositories")
    parser.add_argument("--sets", nargs="+", default=None, help="sets to write (default: all in the manifest)")
    parser.add_argument("--clone", action="store_true", help="clone missing repositories from GitHub")
    parser.add_argument("--no-fit", action="store_true", help="write the videos and lines only")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="clip list (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        clips = read_manifest(args.manifest)
        names = list(dict.fromkeys(clip.set for clip in clips))
        wanted = args.sets or names
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise RealSetsError(f"unknown set {', '.join(unknown)}; the manifest's sets: {', '.join(names)}")
        chosen = [clip for clip in clips if clip.set in wanted]
        repositories = locate_repositories(args.repos, chosen, args.clone)
        for name in dict.fromkeys(wanted):
            members = [clip for clip in chosen if clip.set == name]
            videos = write_videos(args.out / name, members, repositories)
            print(f"{name}: {len(members)} clips in {videos}")
            unfitted = {} if args.no_fit else fit_set(videos, args.out / name / "data")
            write_lines(args.out / name, members, unfitted)
    except (RealSetsError, FlowVQError) as error:  # FlowVQError: the fit's (a data folder already there, ...)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
