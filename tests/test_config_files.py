"""Config files: override files (``.py``) are trusted code, data configs (YAML, JSON) run none.

The data-config tests build each file so that obeying it would leave a trace
(a field set, a file created) and check that the trace is there, or is not.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from lsst.meas.extensions.madness.framework import (
    DATA_CONFIG_SUFFIXES,
    Config,
    ConfigLoadError,
    ConfigurableField,
    Field,
    FieldValidationError,
    Task,
)


class FitConfig(Config):
    maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    bands: list[str] = Field(default_factory=lambda: ["g", "r"], description="Bands to fit.")


class FitTask(Task):
    ConfigClass = FitConfig
    _DefaultName = "fit"


class OtherFitTask(FitTask):
    """Same config class, another class: what a retarget would choose."""


class PriorConfig(Config):
    weight: float = Field(1.0, description="Weight of the prior.")


class TopConfig(Config):
    minFlux: float = Field(0.0, description="Smallest flux deblended.")
    name: str = Field("top", description="A name.")
    prior: PriorConfig = Field(default_factory=PriorConfig, description="Prior parameters.")
    fallback: ConfigurableField = ConfigurableField(doc="Fallback fitter.", target=FitTask)


class TopTask(Task):
    ConfigClass = TopConfig
    _DefaultName = "top"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.makeSubtask("fallback")


_YAML = "minFlux: 2.5\nprior:\n  weight: 0.25\nfallback:\n  maxIter: 100\n  bands: [i]\n"
_JSON = json.dumps({"minFlux": 2.5, "prior": {"weight": 0.25}, "fallback": {"maxIter": 100, "bands": ["i"]}})


# --------------------------------------------------------------------------
# Data configs set fields, including those of sub-configs and subtasks.


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", _YAML), (".yml", _YAML), (".json", _JSON)])
def test_data_config_sets_fields_that_the_task_sees(tmp_path, suffix: str, text: str) -> None:
    filename = tmp_path / f"config{suffix}"
    filename.write_text(text)
    config = TopConfig()
    config.load(str(filename))
    task = TopTask(config=config)
    assert task.config.minFlux == 2.5 and task.config.prior.weight == 0.25
    assert task.fallback.config.maxIter == 100 and task.fallback.config.bands == ["i"]
    assert type(task.fallback) is FitTask
    assert task.config.name == "top"  # left out: unchanged


def test_suffixes_choose_the_format(tmp_path) -> None:
    assert dict(DATA_CONFIG_SUFFIXES) == {".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}
    upper = tmp_path / "CONFIG.YML"
    upper.write_text("minFlux: 4.0\n")
    config = TopConfig()
    config.load(upper)  # a Path works too
    assert config.minFlux == 4.0
    # The same text under another suffix is Python, where it is a bare annotation: proof that
    # the suffix, not the content, chose the reader above.
    python = tmp_path / "config.py"
    python.write_text("minFlux: 4.0\n")
    config = TopConfig()
    config.load(python)
    assert config.minFlux == 0.0


def test_data_config_accepts_the_target_in_place(tmp_path) -> None:
    # What toYaml writes for a subtask: the target in place is a record, not a retarget.
    filename = tmp_path / "config.yaml"
    filename.write_text(f"fallback:\n  target: {FitTask.__module__}.FitTask\n  config:\n    maxIter: 7\n")
    config = TopConfig()
    config.load(str(filename))
    assert config.fallback.target is FitTask and config.fallback.maxIter == 7


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip_as_data(tmp_path, suffix: str) -> None:
    config = TopConfig(minFlux=float("inf"), name="it's", prior={"weight": float("nan")})
    config.fallback.bands = ["y", "z"]
    filename = tmp_path / f"saved{suffix}"
    config.save(str(filename))
    text = filename.read_text()
    assert "config." not in text  # data, not an override file
    if suffix == ".json":
        assert json.loads(text)["fallback"]["config"]["bands"] == ["y", "z"]
    loaded = TopConfig()
    loaded.load(str(filename))
    assert loaded == config
    assert np.isnan(loaded.prior.weight)


# --------------------------------------------------------------------------
# Data configs refuse what they cannot hold, naming the file and the key.


@pytest.mark.parametrize(
    ("suffix", "text", "expected"),
    [
        (".yaml", "minFlux: 1.0\nfallback:\n  maxIterr: 3\n",
         r", line 3: unknown key fallback\.maxIterr: TopConfig\.fallback has no field 'maxIterr'"),
        (".json", '{"prior": {"wieght": 2}}', r": unknown key prior\.wieght: TopConfig\.prior has no field 'wieght'"),
        (".yaml", "fallback:\n  maxIter: many\n",
         r", line 2: TopConfig\.fallback\.maxIter = 'many' is invalid: Input should be a valid integer"),
        (".json", '{"minFlux": [1]}', r": TopConfig\.minFlux = \[1\] is invalid: Input should be a valid number"),
        (".yaml", "fallback:\n  bands: [g, 3]\n", r", line 2: TopConfig\.fallback\.bands\[1\] = 3 is invalid"),
        (".yaml", "prior: 3\n", r", line 1: TopConfig\.prior = 3 is invalid"),
        (".yaml", "fallback: 3\n", r", line 1: TopConfig\.fallback = 3 is invalid: expected a mapping"),
        (".yaml", "minFlux: 1\nminFlux: 2\n", r", line 2: minFlux is given twice"),
        (".json", '{"minFlux": 1, "minFlux": 2}', r": key 'minFlux' is given twice"),
        (".yaml", "- minFlux\n", r": a YAML config must be a mapping of field names to values, not a list"),
        (".yaml", "minFlux: [1\n", r", line \d+: invalid YAML"),
        (".json", '{"minFlux": }', r", line 1: invalid JSON"),
        (".yaml", "name: 2024-05-01\n", r", line 1: name: the YAML tag 'tag:yaml.org,2002:timestamp' is not allowed"),
    ],
)
def test_data_config_errors_name_the_file_and_key(tmp_path, suffix: str, text: str, expected: str) -> None:
    filename = tmp_path / f"bad{suffix}"
    filename.write_text(text)
    with pytest.raises(ConfigLoadError, match=f"^{filename}{expected}") as info:
        TopConfig().load(str(filename))
    assert info.value.filename == str(filename)


@pytest.mark.parametrize(
    "value",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
        "!!python/object/new:subprocess.Popen [[touch, {marker}]]",
    ],
)
def test_yaml_tags_that_construct_objects_are_refused_unrun(tmp_path, value: str) -> None:
    marker = tmp_path / "ran"
    filename = tmp_path / "evil.yaml"
    filename.write_text("minFlux: 1.0\nfallback:\n  maxIter: " + value.format(marker=marker) + "\n")
    config = TopConfig()
    with pytest.raises(ConfigLoadError, match=rf"^{filename}, line 3: fallback\.maxIter: the YAML tag .*python/object"):
        config.load(str(filename))
    assert not marker.exists()
    assert config.minFlux == 0.0  # nothing applied from a refused file


def test_yaml_tag_on_a_key_or_nested_value_is_refused(tmp_path) -> None:
    filename = tmp_path / "evil.yaml"
    filename.write_text("prior:\n  !!python/name:os.system weight: 1\n")
    with pytest.raises(ConfigLoadError, match=r"line 2: prior: the YAML tag .*python/name:os\.system"):
        TopConfig().load(str(filename))
    filename.write_text("fallback:\n  bands: [g, !!binary aGk=]\n")
    with pytest.raises(ConfigLoadError, match=r"line 2: fallback\.bands\[1\]: the YAML tag .*binary"):
        TopConfig().load(str(filename))


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "fallback:\n  target: {module}.OtherFitTask\n  config:\n    maxIter: 3\n"),
        (".yaml", "fallback:\n  target: os.system\n"),
        (".json", '{{"fallback": {{"target": "{module}.OtherFitTask"}}}}'),
        (".yaml", "fallback:\n  target: {module}.FitTask\n  ConfigClass: {module}.PriorConfig\n"),
    ],
)
def test_data_config_cannot_retarget(tmp_path, suffix: str, text: str) -> None:
    filename = tmp_path / f"retarget{suffix}"
    filename.write_text(text.format(module=FitTask.__module__))
    config = TopConfig()
    expected = rf"^{filename}.*: TopConfig\.fallback: .* is not allowed: a data config"
    with pytest.raises(ConfigLoadError, match=expected) as info:
        config.load(str(filename))
    assert "cannot retarget a subtask" in str(info.value) and ".py override file" in str(info.value)
    assert config.fallback.target is FitTask and config.fallback.maxIter == 300


def test_data_config_imports_nothing(tmp_path) -> None:
    filename = tmp_path / "config.yaml"
    filename.write_text("fallback:\n  target: madness_test_never_imported.Task\n")
    with pytest.raises(ConfigLoadError, match="cannot retarget"):
        TopConfig().load(str(filename))
    assert "madness_test_never_imported" not in sys.modules


def test_yaml_aliases_are_plain_data(tmp_path) -> None:
    # Aliases are shared values, not code; a billion-laughs document is checked in linear time.
    filename = tmp_path / "alias.yaml"
    laughs = "".join(f"l{i}: &l{i + 1} [*l{i}, *l{i}, *l{i}, *l{i}]\n" for i in range(30))
    filename.write_text("x: &l0 [g]\n" + laughs + "fallback:\n  bands: *l0\n")
    with pytest.raises(ConfigLoadError, match=r"unknown key x"):
        TopConfig().load(str(filename))
    filename.write_text("fallback: &b\n  maxIter: 4\n")
    config = TopConfig()
    config.load(str(filename))
    assert config.fallback.maxIter == 4


# --------------------------------------------------------------------------
# Override files are trusted Python code.


def test_override_file_is_plain_python(tmp_path) -> None:
    # Trusted code (documented): imports and builtins work as in any script.
    marker = tmp_path / "written-by-the-override-file"
    filename = tmp_path / "overrides.py"
    filename.write_text(
        "import os\n"
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text(os.path.basename(__file__))\n"
        "config.minFlux = float(getattr(config, 'minFlux') + 1.5)\n"
        "config.fallback.maxIter = 12\n"
        f"from {OtherFitTask.__module__} import OtherFitTask\n"
        "config.fallback.retarget(OtherFitTask)\n"
    )
    config = TopConfig()
    config.load(str(filename))
    assert marker.read_text() == "overrides.py"
    assert config.minFlux == 1.5 and config.fallback.maxIter == 12
    assert config.fallback.target is OtherFitTask


def test_override_file_errors_still_name_the_file_and_line(tmp_path) -> None:
    filename = tmp_path / "typo.py"
    filename.write_text("import math\nconfig.minFlux = math.sqrt(4)\nconfig.prior.wieght = 3\n")
    with pytest.raises(ConfigLoadError, match=rf"^{filename}, line 3: UnknownFieldError: .*no field 'wieght'"):
        TopConfig().load(str(filename))
    filename.write_text("config.minFlux = (\n")
    with pytest.raises(ConfigLoadError, match=rf"^{filename}, line 1: invalid syntax"):
        TopConfig().load(str(filename))


def test_from_yaml_text_is_data_only() -> None:
    assert TopConfig.fromYaml("fallback: {maxIter: 9}").fallback.maxIter == 9
    with pytest.raises(ConfigLoadError, match=r"<string>, line 1: minFlux: the YAML tag"):
        TopConfig.fromYaml("minFlux: !!python/object/apply:os.getpid []")
    with pytest.raises(FieldValidationError, match="cannot retarget a subtask"):
        TopConfig.fromYaml(f"fallback: {{target: {OtherFitTask.__module__}.OtherFitTask}}")


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".py"])
def test_a_binary_file_is_a_config_load_error(tmp_path, suffix: str) -> None:
    filename = tmp_path / f"binary{suffix}"
    filename.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigLoadError, match=rf"^{filename}: not a UTF-8 text file"):
        TopConfig().load(str(filename))


# --------------------------------------------------------------------------
# madness-run-task --config with a data config, end to end.


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_run_task_takes_a_yaml_config(tmp_path, tinyModelDirectory, capsys, device) -> None:
    from lsst.meas.extensions.madness.runTask import main
    from lsst.meas.extensions.madness.testing import makeMockMultibandExposure

    mock = makeMockMultibandExposure(shape=(60, 60), nGalaxies=1, seed=3, positions=np.array([[30.0, 30.0]]),
                                     hlrRange=(0.3, 0.6))
    mock.mExposure.writeFits(tmp_path / "exposure.fits")
    mock.catalog.writeFits(tmp_path / "parents.fits", bbox=mock.mExposure.getBBox())
    common = ["--exposure", str(tmp_path / "exposure.fits"), "--catalog", str(tmp_path / "parents.fits"),
              "--device", device, "--no-progress"]
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"maxIter: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    assert main([*common, "--output", str(tmp_path / "refused"), "--config", str(evil)]) == 2
    assert "the YAML tag" in capsys.readouterr().err and not marker.exists()

    config = tmp_path / "config.yaml"
    config.write_text(f"modelDir: {str(tinyModelDirectory)!r}\nmaxIter: 3\nminIter: 2\nfallback:\n  maxIter: 17\n")
    output = tmp_path / "out"
    assert main([*common, "--output", str(output), "--config", str(config)]) == 0
    written = (output / "config.py").read_text()
    assert "config.maxIter = 3" in written and "config.fallback.maxIter = 17" in written

