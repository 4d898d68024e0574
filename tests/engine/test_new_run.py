"""The New-run form's decisions, without Qt: what a model to fine-tune from implies, the trainer's
command line it makes, and the dataset tool's."""
import json
from pathlib import Path

import pytest

from conftest import NVLABS_FIXTURES, export_tiny, tiny_config
from ganstudio.engine.new_run import (DatasetRequest, default_dataset_path, describe_fine_tune_source,
                                      freeze_d_default)
from ganstudio.engine.training_process import NewRunRequest


def test_a_checkpoint_gives_its_preset_resolution_and_the_fine_tuning_defaults(tmp_path):
    ckpt = export_tiny(tmp_path / "model.safetensors", arch="stylegan2", c_dim=3, resolution=16)
    source = describe_fine_tune_source(str(ckpt))
    assert source.usable and source.preset == "stylegan2-cond" and source.resolution == 16
    assert source.augment == "ada" and source.freeze_d == 1
    assert "stylegan2, 16 px, 3 classes" in source.description


def test_a_run_directory_gives_the_run_s_preset(tmp_path):
    run = tmp_path / "00003-dcgan-photos"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(tiny_config("dcgan", resolution=64, model={"img_resolution": 64}).to_dict()))
    source = describe_fine_tune_source(str(run))
    assert source.usable and source.preset == "dcgan" and source.resolution == 64 and source.freeze_d == 2


@pytest.mark.skipif(not NVLABS_FIXTURES.is_dir(), reason="no NVlabs fixtures here")
def test_an_nvlabs_pickle_is_named_not_opened():
    source = describe_fine_tune_source(str(NVLABS_FIXTURES / "sg2ada-uncond-32.pkl"))
    assert source.usable and source.resolution == 0 and source.preset == "stylegan2" and source.augment == "ada"


def test_what_is_not_a_model_is_said_and_changes_nothing(tmp_path):
    (tmp_path / "photos.zip").write_bytes(b"PK")
    assert describe_fine_tune_source("") == describe_fine_tune_source("  ")
    for path in (tmp_path / "photos.zip", tmp_path / "missing.safetensors", tmp_path):
        source = describe_fine_tune_source(str(path))
        assert not source.usable and "not a run directory" in source.description and not source.augment
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 4)
    assert describe_fine_tune_source(str(tmp_path / "broken.safetensors")).description.startswith("cannot read it")


def test_freeze_d_default_is_half_of_d_s_blocks():
    assert [freeze_d_default(r) for r in (0, 16, 32, 64, 256, 1024)] == [2, 1, 1, 2, 3, 4]


def test_the_fine_tuning_options_reach_the_command_line(tmp_path):
    request = NewRunRequest("stylegan2", "photos.zip", 0, 5.0, str(tmp_path), init=str(tmp_path / "m.pkl"),
                            augment="ada", freeze_d=2)
    args = request.arguments()
    assert "--resolution" not in args   # 0: the model's own
    assert args[args.index("--init") + 1] == str((tmp_path / "m.pkl").resolve())
    assert args[args.index("--augment") + 1] == "ada" and args[args.index("--freeze-d") + 1] == "2"
    plain = NewRunRequest("dcgan", "digits", 32, 5.0, str(tmp_path)).arguments()
    assert "--init" not in plain and "--augment" not in plain and plain[plain.index("--resolution") + 1] == "32"


def test_the_dataset_tool_request_and_where_its_zip_goes(tmp_path):
    (tmp_path / "photos").mkdir()
    assert default_dataset_path(str(tmp_path / "photos")) == str(tmp_path / "photos.zip")
    assert default_dataset_path(str(tmp_path / "clip.mp4")) == str(tmp_path / "clip.zip")
    assert default_dataset_path(str(tmp_path / "pictures.zip")) == str(tmp_path / "pictures-dataset.zip")
    args = DatasetRequest(str(tmp_path / "photos"), str(tmp_path / "d.zip"), 100, "wide", 1, 5, False).arguments()
    assert args[:2] == ["dataset", str(tmp_path / "photos")] and Path(args[args.index("--out") + 1]).name == "d.zip"
    assert args[args.index("--crop") + 1] == "wide" and "--no-labels" in args and "--force" in args
    from trainer.cli.dataset import parser
    parsed = parser().parse_args(args[1:])
    assert (parsed.resolution, parsed.channels, parsed.every, parsed.labels) == (100, 1, 5, False)
