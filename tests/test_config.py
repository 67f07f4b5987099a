"""Tests of the pydantic Config system (pex_config semantics)."""

from __future__ import annotations

import copy
import math
import pickle
import sys
import types
from typing import Literal

import pytest

from lsst.meas.extensions.madness.framework import (
    Config,
    ConfigLoadError,
    ConfigurableField,
    ConfigurableInstance,
    Field,
    FieldValidationError,
    Task,
    UnknownFieldError,
)

# --------------------------------------------------------------------------
# Configs and tasks used by the tests.


class FitConfig(Config):
    maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    tol: float = Field(1e-3, description="Convergence tolerance.", gt=0)
    bands: list[str] = Field(default_factory=lambda: ["g", "r", "i"], description="Bands to fit.")


class FitTask(Task):
    ConfigClass = FitConfig
    _DefaultName = "fit"


class FastFitTask(FitTask):
    """Same config class as FitTask."""


class OtherFitConfig(Config):
    nSteps: int = Field(10, description="Number of steps.", ge=0)


class OtherFitTask(Task):
    ConfigClass = OtherFitConfig
    _DefaultName = "otherFit"


class PriorConfig(Config):
    kind: Literal["flow", "gaussian"] = Field("flow", description="Latent-space prior.")
    weight: float = Field(1.0, description="Weight of the prior.")


class TopConfig(Config):
    maxIter: int = Field(100, description="Outer iterations.", ge=1)
    name: str = Field("top", description="A name.")
    scale: tuple[float, float] = Field((1.0, 2.0), description="Two scales.")
    weights: dict[str, float] = Field(default_factory=lambda: {"g": 1.0}, description="Band weights.")
    optional: int | None = Field(None, description="Optional value.")
    prior: PriorConfig = Field(default_factory=PriorConfig, description="Prior parameters.")
    fit: ConfigurableField = ConfigurableField(doc="Fitter to use.", target=FitTask)
    fallback: ConfigurableField = ConfigurableField(doc="Fallback fitter.", target=FitTask)


class DefaultsConfig(TopConfig):
    def setDefaults(self) -> None:
        super().setDefaults()
        self.maxIter = 7
        self.fit.maxIter = 11
        self.fallback.retarget(OtherFitTask)


# A module holding targets under a name that the override files written by
# save() can import (this test module's own name depends on how pytest
# imports it).
_TARGET_MODULE = "lsst.madness_framework_test_targets"


@pytest.fixture
def lsstTargets(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(_TARGET_MODULE)
    for cls in (OtherFitTask, OtherFitConfig, FastFitTask):
        monkeypatch.setattr(cls, "__module__", _TARGET_MODULE)
        setattr(module, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, _TARGET_MODULE, module)
    return module


# --------------------------------------------------------------------------
# Defaults, construction and validation.


def test_defaults_and_kwargs() -> None:
    config = TopConfig(maxIter=5, prior={"kind": "gaussian"})
    assert config.maxIter == 5
    assert config.prior.kind == "gaussian"
    assert config.prior.weight == 1.0
    assert config.fit.maxIter == 300
    assert config.fit.target is FitTask
    assert config.fit.ConfigClass is FitConfig
    assert isinstance(config.fit.value, FitConfig)


def test_set_defaults_runs_before_kwargs() -> None:
    config = DefaultsConfig()
    assert config.maxIter == 7
    assert config.fit.maxIter == 11
    assert config.fallback.target is OtherFitTask
    overridden = DefaultsConfig(maxIter=3, fit={"tol": 0.5})
    assert overridden.maxIter == 3
    # The kwargs update the sub-config set up by setDefaults, not a fresh one.
    assert overridden.fit.maxIter == 11
    assert overridden.fit.tol == 0.5


def test_instances_do_not_share_state() -> None:
    a, b = TopConfig(), TopConfig()
    assert a.fit is not b.fit
    a.fit.maxIter = 2
    a.fit.bands.append("z")
    a.weights["r"] = 0.5
    a.fallback.retarget(OtherFitTask)
    assert b.fit.maxIter == 300
    assert b.fit.bands == ["g", "r", "i"]
    assert b.weights == {"g": 1.0}
    assert b.fallback.target is FitTask


def test_validation_error_names_field_and_value() -> None:
    config = TopConfig()
    with pytest.raises(FieldValidationError) as info:
        config.maxIter = -3
    message = str(info.value)
    assert message.startswith("TopConfig.maxIter = -3 is invalid:")
    assert "greater than or equal to 1" in message
    assert info.value.fieldPath == "maxIter"
    assert info.value.value == -3
    assert config.maxIter == 100


def test_validation_error_in_subconfig_has_dotted_path() -> None:
    config = TopConfig()
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit\.maxIter = 0 is invalid"):
        config.fit.maxIter = 0
    with pytest.raises(FieldValidationError, match=r"TopConfig\.prior\.kind = 'uniform' is invalid"):
        config.prior.kind = "uniform"
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit\.bands\[1\] = 3 is invalid"):
        config.fit.bands = ["g", 3]
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit\.maxIter = -1 is invalid"):
        TopConfig(fit={"maxIter": -1})
    with pytest.raises(FieldValidationError, match=r"TopConfig\.prior\.weight = 'heavy' is invalid"):
        TopConfig(prior=PriorConfig(), maxIter=2).prior.weight = "heavy"


def test_construction_error_names_field() -> None:
    with pytest.raises(FieldValidationError, match=r"TopConfig\.maxIter = 0 is invalid"):
        TopConfig(maxIter=0)


def test_unknown_field_is_forbidden() -> None:
    config = TopConfig()
    with pytest.raises(UnknownFieldError, match="no field 'maxIterr'") as info:
        config.maxIterr = 3
    assert isinstance(info.value, AttributeError)
    assert isinstance(info.value, FieldValidationError)
    with pytest.raises(UnknownFieldError, match=r"TopConfig\.fit has no field 'nIter'"):
        config.fit.nIter = 3
    with pytest.raises(UnknownFieldError, match="no field 'bogus'"):
        TopConfig(bogus=1)
    with pytest.raises(UnknownFieldError, match=r"TopConfig\.fit has no field 'bogus'"):
        TopConfig.fromDict({"fit": {"bogus": 1}})


def test_every_field_needs_a_description() -> None:
    with pytest.raises(TypeError, match=r"UndocumentedConfig\.count has no description"):

        class UndocumentedConfig(Config):
            count: int = Field(3)

    with pytest.raises(TypeError, match=r"BareConfig\.count has no description"):

        class BareConfig(Config):
            count: int = 3

    with pytest.raises(TypeError, match=r"NoDocSubtaskConfig\.fit has no description"):

        class NoDocSubtaskConfig(Config):
            fit: ConfigurableField = ConfigurableField(target=FitTask)


def test_every_field_needs_a_default() -> None:
    with pytest.raises(TypeError, match=r"RequiredConfig\.count has no default"):

        class RequiredConfig(Config):
            count: int = Field(description="A count.")


def test_doc_alias_for_description() -> None:
    class PexStyleConfig(Config):
        count: int = Field(3, doc="A count.")

    assert PexStyleConfig.model_fields["count"].description == "A count."
    with pytest.raises(TypeError, match="either doc= or description="):
        Field(3, doc="a", description="b")


def test_configurable_field_needs_a_usable_target() -> None:
    with pytest.raises(TypeError, match="needs a target"):
        ConfigurableField(doc="No target.")
    with pytest.raises(FieldValidationError, match="no ConfigClass"):
        ConfigurableField(doc="Bad target.", target=dict)


def test_configurable_annotation_without_default_is_rejected() -> None:
    with pytest.raises(TypeError, match="needs a ConfigurableField"):

        class WrongConfig(Config):
            fit: ConfigurableField = Field(None, description="Not a subtask field.")


def test_string_target_is_resolved_lazily(lsstTargets: types.ModuleType) -> None:
    class LazyConfig(Config):
        sub: ConfigurableField = ConfigurableField(
            doc="Target named by import path.", target=f"{_TARGET_MODULE}.OtherFitTask"
        )

    config = LazyConfig()
    assert config.sub.target is OtherFitTask
    assert config.sub.ConfigClass is OtherFitConfig


def test_validate_catches_in_place_changes_and_runs_hook() -> None:
    config = TopConfig()
    config.fit.bands.append(5)
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit\.bands\[3\] = 5 is invalid"):
        config.validate()

    class CheckedConfig(Config):
        low: int = Field(1, description="Lower bound.")
        high: int = Field(2, description="Upper bound.")

        def validate(self) -> None:
            super().validate()
            if self.low >= self.high:
                raise FieldValidationError(f"low={self.low} must be below high={self.high}")

    checked = CheckedConfig(low=5)
    with pytest.raises(FieldValidationError, match="low=5 must be below high=2"):
        checked.validate()
    CheckedConfig().validate()


# --------------------------------------------------------------------------
# Subtasks: forwarding, apply, retarget.


def test_attribute_forwarding() -> None:
    config = TopConfig()
    config.fit.maxIter = 3
    assert config.fit.value.maxIter == 3
    assert config.fit.maxIter == 3
    assert "maxIter" in dir(config.fit)


def test_apply_builds_target_with_subconfig() -> None:
    config = TopConfig()
    config.fit.maxIter = 9
    task = config.fit.apply(name="standalone")
    assert isinstance(task, FitTask)
    assert task.config is config.fit.value
    assert task.getName() == "standalone"


def test_retarget_same_config_class_keeps_values() -> None:
    config = TopConfig()
    config.fit.maxIter = 42
    config.fit.retarget(FastFitTask)
    assert config.fit.target is FastFitTask
    assert config.fit.ConfigClass is FitConfig
    assert config.fit.maxIter == 42


def test_retarget_different_config_class_resets_values() -> None:
    config = TopConfig()
    config.fit.maxIter = 42
    config.fit.retarget(OtherFitTask)
    assert config.fit.ConfigClass is OtherFitConfig
    assert config.fit.value == OtherFitConfig()
    assert not hasattr(config.fit.value, "maxIter")
    config.fit.nSteps = 4
    config.fit.retarget(FitTask)
    assert config.fit.maxIter == 300


def test_retarget_with_explicit_config_class() -> None:
    class WideFitConfig(FitConfig):
        width: int = Field(3, description="Width.")

    config = TopConfig()
    config.fit.retarget(FitTask, ConfigClass=WideFitConfig)
    assert config.fit.ConfigClass is WideFitConfig
    assert config.fit.width == 3
    assert config.fit.apply().config.width == 3


def test_retarget_errors_name_the_field() -> None:
    config = TopConfig()
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit.*no ConfigClass"):
        config.fit.retarget(dict)
    with pytest.raises(FieldValidationError, match="must be a class"):
        config.fit.retarget("lsst.some.Task")


def test_assigning_subtask_values() -> None:
    config = TopConfig()
    config.fit = FitConfig(maxIter=8)
    assert config.fit.maxIter == 8
    config.fit = {"maxIter": 9}
    assert config.fit.maxIter == 9
    config.fit = FitConfig
    assert config.fit.maxIter == 300
    other = TopConfig()
    other.fit.retarget(OtherFitTask)
    other.fit.nSteps = 2
    config.fit = other.fit
    assert config.fit.target is OtherFitTask and config.fit.nSteps == 2
    assert config.fit.value is not other.fit.value
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fallback = 3 is invalid"):
        config.fallback = 3


# --------------------------------------------------------------------------
# Freezing, copying, comparing, toDict.


def test_freeze_blocks_all_modifications() -> None:
    config = TopConfig()
    config.freeze()
    assert config.frozen
    attempts = [
        lambda: setattr(config, "maxIter", 5),
        lambda: setattr(config.fit, "maxIter", 5),
        lambda: setattr(config.fit.value, "tol", 0.1),
        lambda: setattr(config.prior, "weight", 2.0),
        lambda: config.fit.retarget(OtherFitTask),
        lambda: config.fit.bands.append("z"),
        lambda: config.weights.update(r=2.0),
        lambda: config.weights.__setitem__("r", 2.0),
        lambda: config.update(maxIter=3),
        lambda: setattr(config, "fit", {"maxIter": 3}),
        lambda: config.loadFromString("config.maxIter = 2"),
    ]
    for attempt in attempts:
        with pytest.raises((FieldValidationError, ConfigLoadError), match="frozen"):
            attempt()
    assert config == TopConfig()


def test_copy_is_deep_and_unfrozen() -> None:
    config = TopConfig()
    config.fit.retarget(OtherFitTask)
    config.freeze()
    duplicate = config.copy()
    assert duplicate == config
    assert not duplicate.frozen
    duplicate.fit.nSteps = 99
    duplicate.weights["z"] = 3.0
    assert config.fit.nSteps == 10
    assert "z" not in config.weights
    assert type(copy.deepcopy(config).weights) is type(config.weights)


def test_pickle_round_trip() -> None:
    config = TopConfig()
    config.fit.maxIter = 12
    config.freeze()
    restored = pickle.loads(pickle.dumps(config))
    assert restored == config
    assert restored.fit.maxIter == 12


def test_compare_with_tolerance() -> None:
    a, b = TopConfig(), TopConfig()
    b.prior.weight = 1.0 + 1e-12
    messages: list[str] = []
    assert a != b
    assert a.compare(b, output=messages.append)
    b.prior.weight = 2.0
    assert not a.compare(b, output=messages.append)
    assert any("prior.weight" in m for m in messages)
    b = TopConfig()
    b.fit.retarget(FastFitTask)
    assert a != b
    assert not a.compare(b, output=messages.append)
    assert "target for fit" in messages[-1]


def test_to_dict_is_plain() -> None:
    config = TopConfig()
    config.fit.retarget(OtherFitTask)
    config.freeze()
    data = config.toDict()
    assert data == {
        "maxIter": 100,
        "name": "top",
        "scale": (1.0, 2.0),
        "weights": {"g": 1.0},
        "optional": None,
        "prior": {"kind": "flow", "weight": 1.0},
        "fit": {"nSteps": 10},
        "fallback": {"maxIter": 300, "tol": 1e-3, "bands": ["g", "r", "i"]},
    }
    assert type(data["weights"]) is dict and type(data["fallback"]["bands"]) is list
    data["fallback"]["bands"].append("z")
    assert config.fallback.bands == ["g", "r", "i"]


def test_names_and_items() -> None:
    config = TopConfig()
    assert "fit.maxIter" in config.names()
    assert "prior.kind" in config.names()
    assert config.keys()[:2] == ["maxIter", "name"]
    assert isinstance(dict(config.items())["fit"], ConfigurableInstance)


# --------------------------------------------------------------------------
# Override files.


def _modifiedConfig() -> TopConfig:
    config = TopConfig()
    config.maxIter = 300
    config.name = "it's \"quoted\""
    config.scale = (0.5, float("inf"))
    config.weights = {"g": 0.25, "r": float("nan")}
    config.optional = 4
    config.prior.kind = "gaussian"
    config.fit.maxIter = 17
    config.fit.bands = ["y"]
    config.fallback.retarget(OtherFitTask)
    config.fallback.nSteps = 3
    return config


def test_save_load_round_trip(tmp_path, lsstTargets: types.ModuleType) -> None:
    config = _modifiedConfig()
    filename = tmp_path / "overrides.py"
    config.save(str(filename))
    text = filename.read_text()
    assert f"from {_TARGET_MODULE} import OtherFitTask" in text
    assert "config.fallback.retarget(OtherFitTask)" in text
    assert "config.fit.maxIter = 17" in text
    loaded = TopConfig()
    loaded.load(str(filename))
    assert loaded == config
    assert loaded.fallback.target is OtherFitTask
    assert math.isnan(loaded.weights["r"]) and loaded.scale == (0.5, math.inf)


def test_save_load_round_trip_with_explicit_config_class(lsstTargets: types.ModuleType) -> None:
    config = TopConfig()
    config.fit.retarget(FastFitTask, ConfigClass=OtherFitConfig)
    config.fit.nSteps = 1
    text = config.saveToString()
    assert "config.fit.retarget(FastFitTask, ConfigClass=OtherFitConfig)" in text
    loaded = TopConfig()
    loaded.loadFromString(text)
    assert loaded == config


def test_save_of_retargeted_set_defaults_round_trips(lsstTargets: types.ModuleType) -> None:
    # setDefaults retargets fallback to OtherFitTask; the file must undo it.
    config = DefaultsConfig()
    config.fallback.retarget(FastFitTask)
    config.fallback.maxIter = 2
    text = config.saveToString()
    assert "config.fallback.retarget(FastFitTask)" in text
    assert "config.fit.retarget" not in text
    loaded = DefaultsConfig()
    assert loaded.fallback.target is OtherFitTask
    loaded.loadFromString(text)
    assert loaded == config
    assert loaded.fallback.target is FastFitTask


def test_save_rejects_unimportable_target() -> None:
    class LocalTask(FitTask):
        pass

    config = TopConfig()
    config.fit.retarget(LocalTask)
    with pytest.raises(ValueError, match="defined inside a function"):
        config.saveToString()


def test_load_pex_style_overrides(tmp_path, lsstTargets: types.ModuleType) -> None:
    filename = tmp_path / "pipeline_overrides.py"
    filename.write_text(
        "import math\n"
        "config.maxIter = 300\n"
        "config.fit.tol = math.sqrt(1e-6)\n"
        "config.fit.bands = sorted(['r', 'g'])\n"
        f"from {_TARGET_MODULE} import OtherFitTask\n"
        "config.fallback.retarget(OtherFitTask)\n"
        "config.fallback.nSteps = max(2, 5)\n"
    )
    config = TopConfig()
    config.load(str(filename))
    assert config.maxIter == 300
    assert config.fit.tol == pytest.approx(1e-3)
    assert config.fit.bands == ["g", "r"]
    assert config.fallback.target is OtherFitTask and config.fallback.nSteps == 5


def test_load_error_names_file_line_and_source(tmp_path) -> None:
    filename = tmp_path / "failing.py"
    filename.write_text("config.maxIter = 5\nraise RuntimeError('stop here')\n")
    with pytest.raises(ConfigLoadError) as info:
        TopConfig().load(str(filename))
    message = str(info.value)
    assert message.startswith(f"{filename}, line 2: RuntimeError: stop here")
    assert info.value.lineno == 2 and info.value.filename == str(filename)
    assert "raise RuntimeError('stop here')" in message


def test_load_error_names_file_line_and_field(tmp_path) -> None:
    filename = tmp_path / "typo.py"
    filename.write_text("config.maxIter = 5\n\nconfig.fit.maxIterr = 3\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line 3: .*no field 'maxIterr'") as info:
        TopConfig().load(str(filename))
    assert isinstance(info.value.__cause__, UnknownFieldError)

    filename.write_text("config.fit.maxIter = -3\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line 1: .*TopConfig\.fit\.maxIter = -3 is invalid"):
        TopConfig().load(str(filename))

    filename.write_text("config.maxIter = 5\nconfig.maxIter = = 3\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line 2: invalid syntax"):
        TopConfig().load(str(filename))


def test_load_from_string_uses_root_and_extra_locals() -> None:
    config = TopConfig()
    config.loadFromString("root.maxIter = value", root="root", extraLocals={"value": 12})
    assert config.maxIter == 12
    with pytest.raises(ConfigLoadError, match=r"<string>, line 1: NameError: name 'undefined' is not defined"):
        config.loadFromString("config.maxIter = undefined")


# --------------------------------------------------------------------------
# YAML.


def test_yaml_round_trip(tmp_path) -> None:
    config = _modifiedConfig()
    config.fit.retarget(FastFitTask, ConfigClass=OtherFitConfig)
    config.fit.nSteps = 2
    text = config.toYaml()
    assert f"target: {OtherFitTask.__module__}.OtherFitTask" in text
    assert f"ConfigClass: {OtherFitConfig.__module__}.OtherFitConfig" in text
    # YAML is data: it records the targets but cannot retarget...
    with pytest.raises(FieldValidationError, match=r"TopConfig\.fit: target .*FastFitTask' is not allowed"):
        TopConfig.fromYaml(text)

    # ... so it loads into a config whose subtasks already have those targets.
    filename = tmp_path / "config.yaml"
    config.saveYaml(str(filename))
    loaded = TopConfig()
    loaded.fit.retarget(FastFitTask, ConfigClass=OtherFitConfig)
    loaded.fallback.retarget(OtherFitTask)
    loaded.loadYaml(str(filename))
    assert loaded == config
    plain = TopConfig(maxIter=3, fit={"bands": ["z"]})
    assert TopConfig.fromYaml(plain.toYaml()) == plain


def test_yaml_partial_and_errors(tmp_path) -> None:
    partial = TopConfig.fromYaml("fit:\n  maxIter: 3\nprior:\n  weight: 0.5\n")
    assert partial.fit.maxIter == 3 and partial.fit.tol == 1e-3
    assert partial.prior.weight == 0.5 and partial.prior.kind == "flow"

    filename = tmp_path / "bad.yaml"
    filename.write_text("fit:\n  maxIter: -2\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line 2: TopConfig\.fit\.maxIter = -2 is invalid"):
        TopConfig().loadYaml(str(filename))
    filename.write_text("fit:\n  target: os.system\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line 2: TopConfig\.fit: target 'os\.system' is not"):
        TopConfig().loadYaml(str(filename))
    filename.write_text("fit:\n  target: notimported_pkg.Task\n")
    with pytest.raises(ConfigLoadError, match="cannot retarget a subtask"):
        TopConfig().loadYaml(str(filename))
    assert "notimported_pkg" not in sys.modules
    filename.write_text("fit: [1, 2\n")
    with pytest.raises(ConfigLoadError, match=rf"{filename}, line \d+: invalid YAML"):
        TopConfig().loadYaml(str(filename))


def test_model_validate_path_runs_set_defaults() -> None:
    config = DefaultsConfig.model_validate({"name": "x"})
    assert config.maxIter == 7 and config.name == "x"
    assert config.fallback.target is OtherFitTask


def test_the_task_takes_its_map_defaults_from_the_core():
    """One definition per parameter: a default MadnessDeblendConfig gives the MAP core its own defaults."""
    from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig, MapConfig

    assert MadnessDeblendConfig().mapConfig() == MapConfig()
    changed = MadnessDeblendConfig(lrDecay=0.5, convergenceWindow=7, relativeTolerance=0.1, backtrack=False)
    assert changed.mapConfig() == MapConfig(lrDecay=0.5, window=7, tolerance=0.1, backtrack=False)
