"""core.train.report: a run's loss curves become a PNG and its last losses a Markdown summary."""

import numpy as np
import pytest
from skimage.io import imread

from core.cli import main
from core.errors import FlowVQError
from core.train.loop import read_history, train_coeff
from core.train.report import PLOT_FILE, REPORT_FILE, write_report
from core.corpus.toy import write_toy_dataset
from tests.core.test_train_loop import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, face):
    root = tmp_path_factory.mktemp("report")
    write_toy_dataset(root / "toy", face.names, face.id, n_train=6, n_val=2, frames=40, seed=0)
    config = tiny_config(root / "cfg", root / "toy", steps=6, log_every=2, val_every=3, val_batches=1)
    return train_coeff(config, device="cpu")


def test_report_has_curves_and_the_last_losses(run, tmp_path) -> None:
    path = write_report(run, tmp_path)
    image = imread(tmp_path / PLOT_FILE)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert np.ptp(image[..., :3]) > 100  # something is drawn
    text = path.read_text()
    last_val = [e for e in read_history(run) if e["event"] == "val"][-1]
    assert f"| last val | {last_val['step']} |" in text
    assert f"{last_val['exp_nll']:.3f}" in text


def test_cli_writes_beside_the_run_and_a_folder_without_history_is_refused(run, tmp_path, capsys) -> None:
    assert main(["train", "report", str(run)]) == 0
    assert (run / PLOT_FILE).is_file() and (run / REPORT_FILE).is_file()
    with pytest.raises(FlowVQError, match="no training history"):
        write_report(tmp_path)
