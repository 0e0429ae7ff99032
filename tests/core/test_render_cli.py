"""`flowvq render` as a user runs it: a real process, the real astronaut portrait, real files."""

import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from core.audio import SAMPLE_RATE
from core.formats.takes import Take, save_takes

FLOWVQ = Path(sys.executable).with_name("flowvq")
FRAMES = 8
FPS = 20.0  # not a writer's default, so a video at the wrong rate shows
SIZE = 95  # odd: the video's yuv420p frames are one pixel larger


def flowvq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLOWVQ), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GLOG_minloglevel": "2", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photos, face) -> dict[str, Path]:
    """A portrait PNG, a takes file of two takes (the second opens and closes the jaw), a speech-length WAV."""
    folder = tmp_path_factory.mktemp("render_inputs")
    portrait = folder / "astronaut.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(photos["astronaut"], cv2.COLOR_RGB2BGR))
    still = np.zeros((FRAMES, face.n_expressions), np.float32)
    talking = still.copy()
    talking[:, face.names.index("jawOpen")] = 0.5 * (1 - np.cos(np.linspace(0, 2 * np.pi, FRAMES)))
    takes = [Take(take=k, seed=k, emotion="talk", fps=FPS, names=face.names, exp=exp,
                  pose=np.zeros((FRAMES, 6), np.float32), face_model=face.id)
             for k, exp in enumerate((still, talking))]
    save_takes(folder / "takes.json", takes)
    t = np.arange(round(FRAMES / FPS * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(folder / "speech.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SAMPLE_RATE)
    return {"portrait": portrait, "takes": folder / "takes.json", "audio": folder / "speech.wav"}


def test_render_writes_numbered_frames_and_a_video_with_audio(tmp_path, inputs):
    out, video = tmp_path / "frames", tmp_path / "take.mp4"
    result = flowvq("render", "--source", str(inputs["portrait"]), "--takes", str(inputs["takes"]), "--take", "1",
                    "--renderer", "warp", "--size", str(SIZE), "--out", str(out), "--video", str(video),
                    "--audio", str(inputs["audio"]))
    assert result.returncode == 0, result.stderr
    assert "renderer: warp" in result.stderr
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:05d}.png" for i in range(FRAMES)]
    frames = [cv2.imread(str(p)) for p in pngs]
    assert all(f.shape == (SIZE, SIZE, 3) for f in frames)
    assert np.abs(frames[FRAMES // 2].astype(int) - frames[0]).max() > 50  # the jaw opened mid-take
    with av.open(str(video)) as container:
        kinds = sorted(s.type for s in container.streams)
        assert container.streams.video[0].average_rate == FPS
        decoded, audio = [], 0
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                decoded.append(frame.to_ndarray(format="rgb24"))
            else:
                audio += frame.samples
    assert kinds == ["audio", "video"]
    assert len(decoded) == FRAMES and decoded[0].shape == (SIZE + 1, SIZE + 1, 3)
    assert audio >= FRAMES / FPS * SAMPLE_RATE  # the whole clip (AAC adds priming samples)


def test_a_video_of_an_unknown_format_fails_before_anything_is_written(tmp_path, inputs):
    out = tmp_path / "frames"
    result = flowvq("render", "--source", str(inputs["portrait"]), "--takes", str(inputs["takes"]), "--renderer", "warp",
                    "--size", str(SIZE), "--out", str(out), "--video", str(tmp_path / "take.gif"))
    assert result.returncode == 2
    assert "cannot write a video to take.gif" in result.stderr
    assert not out.exists()


def test_auto_says_it_fell_back_to_the_mesh_warp(tmp_path, inputs):
    result = flowvq("render", "--source", str(inputs["portrait"]), "--takes", str(inputs["takes"]),
                    "--weights", str(tmp_path), "--size", str(SIZE), "--out", str(tmp_path / "frames"))
    assert result.returncode == 0, result.stderr
    assert "renderer: warp (auto: no VQIG weights found" in result.stderr
    assert len(list((tmp_path / "frames").glob("*.png"))) == FRAMES


def test_a_portrait_without_a_face_fails_cleanly_and_writes_nothing(tmp_path, inputs):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((200, 200, 3), 128, np.uint8))
    out = tmp_path / "frames"
    result = flowvq("render", "--source", str(gray), "--takes", str(inputs["takes"]), "--renderer", "warp",
                    "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("flowvq: error: no face found")
    assert not out.exists()
